// DOM helpers of the atlas's and the explain page's scripts: each page includes this file before
// its own script (plain functions, no library, no network).
const SVG = "http://www.w3.org/2000/svg";
function el(tag, attrs, text) {
  const node = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
  if (text !== undefined && text !== null) { node.textContent = text; }
  return node;
}
function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
  if (text !== undefined) { node.textContent = text; }
  return node;
}
function fmt(x, digits) {
  if (x === null || x === undefined) { return ""; }
  if (typeof x !== "number") { return String(x); }
  const a = Math.abs(x);
  return (a !== 0 && (a < 1e-3 || a >= 1e4)) ? x.toExponential(2) : x.toFixed(digits === undefined ? 3 : digits);
}
