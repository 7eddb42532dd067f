"""Names of MANet's attention branches (torch-free, shared by the CLI, GUI and training config)."""

from __future__ import annotations

ATTENTIONS = ("saliency", "text")
#: Which attention maps re-weight the feature map the index pools: "all" (the paper's F') or
#: "saliency" (the text map re-weights only the classifier's and title head's input; models.manet).
RETRIEVAL_ATTENTIONS = ("all", "saliency")
#: The paper's choice, and that of checkpoints that do not name one.
DEFAULT_RETRIEVAL_ATTENTION = "all"


def parse_attention(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """Normalise an attention selection: "none" | "saliency" | "text" | "both" or a list of names."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.strip().lower()
        if value in ("none", ""):
            return ()
        if value == "both":
            return ATTENTIONS
        value = tuple(part.strip() for part in value.split(",") if part.strip())
    names = tuple(dict.fromkeys(value))
    unknown = [name for name in names if name not in ATTENTIONS]
    if unknown:
        raise ValueError(f"unknown attention {unknown[0]!r}; choose none, saliency, text or both")
    return tuple(name for name in ATTENTIONS if name in names)
