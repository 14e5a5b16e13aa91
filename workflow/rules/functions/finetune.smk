# Functions of the fine-tuning stage (workflow/rules/finetune.smk, which includes this file).


def checkpoint_inputs(wildcards):
    """The local pretrained weights (``model.checkpoint``) as inputs of fine-tuning; none when unset.

    A file (fair-esm ``.pt``, ESM C ``.pth``) is the input itself. A directory (a Hugging Face
    snapshot) contributes its files, not itself: a directory's mtime changes only when entries
    are added or removed, so a weights file rewritten in place would not rerun fine-tuning.
    """
    ckpt = config["model"]["checkpoint"]
    if not (ckpt and config["model"]["pretrained"]):
        return []
    path = Path(ckpt).expanduser()
    if path.is_dir():
        return sorted(
            str(f)
            for f in path.rglob("*")
            if f.is_file()
            and not any(p.startswith(".") for p in f.relative_to(path).parts)
        )
    return [str(path)]
