"""GET /model's answer: the public view of the model card.

The card in the bundle keeps how the model was made (`training`: the job's settings, with the data's
location, the data's sha256, row counts, cleaning and privacy choices) for audit by whoever holds the
bundle. Callers of the API get what using and checking the model needs. The view is an allow-list, so a
key added to cards later stays private until it is added here (docs/bundle-contract.md).
"""

from typing import Any

PUBLIC_KEYS = ("format", "name", "version", "task", "input", "outputs", "labels", "metrics", "sample", "export",
               "int8", "sha256")  # fmt: skip


def public_card(card: dict[str, Any]) -> dict[str, Any]:
    """The card's public keys, in card order; `training` and any key not in PUBLIC_KEYS are left out."""
    return {key: value for key, value in card.items() if key in PUBLIC_KEYS}
