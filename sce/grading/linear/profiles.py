"""What each family of fused kernels legitimately does differently, as a profile.

Every profile grades the same loss (PyTorch's semantics); a profile only says where a kernel of
that family rounds, which the same-type baseline then rounds too (so its errors are allowed):

* ``pytorch``: ``F.cross_entropy(hidden @ classifier.T + bias, …)`` under autocast: the logits,
  the gradient of the logits and each of ∂L/∂E, ∂L/∂C in the input's type, float32 accumulation.
* ``liger``: Liger-Kernel's fused linear cross-entropy: the logits of a chunk in the input's
  type, the softmax and the gradient in float32 inside the kernel, written back in the input's
  type; ∂L/∂C accumulated over chunks in float32.
* ``cce``: Apple's cut cross-entropy: the logits and the gradient in the input's type, and gradient blocks whose
  every entry is below ε/32 of the input's own type (its ``filter_eps``: 2⁻¹⁵ in float16, 2⁻¹² in bfloat16)
  skipped: each entry of ∂L/∂E and ∂L/∂C may miss up to ε/32·Σⱼ|C_jd| (or |E_id|) of such entries; the z-loss
  in the input type.
* ``torchtune``: chunked loss: each chunk's logits in the input's type, upcast to float32 for
  the loss; the gradient back through the chunk's logits in the input's type.
* ``megatron``: vocabulary-parallel loss: logits in the input's type, softmax in float32.
* ``loop``: a kernel that sums each result in one running sum (a textbook loop over the vocabulary,
  ∂L/∂C added one row at a time): as ``pytorch``, and every output allowed at least the worst case
  of such a sum, Higham's K·u over its K terms (quick mode's allowance), where frameworks' sums in
  lanes, tiles and pairs err some √K times less than that.
"""

from __future__ import annotations

from dataclasses import dataclass

from sce.loss.result import InvalidInput


@dataclass(frozen=True)
class Profile:
    """Where a family of kernels rounds to the input's type, and what it may skip."""

    name: str
    logits_in_input_type: bool
    """The logits of a chunk are rounded to the input's type before the softmax."""
    gradient_in_input_type: bool
    """∂L/∂z is rounded to the input's type before the products that give ∂L/∂E and ∂L/∂C."""
    skipped_below: float = 0.0
    """Gradient entries below this many times the input type's own ε may be skipped."""
    z_loss_in_input_type: bool = False
    """The z-loss term λ·lse² is formed in the input's type."""
    running_sums: bool = False
    """Each output may be summed in one running sum: allowed at least its worst case, K·u over K terms."""


PROFILES: dict[str, Profile] = {
    "pytorch": Profile("pytorch", logits_in_input_type=True, gradient_in_input_type=True),
    "liger": Profile("liger", logits_in_input_type=True, gradient_in_input_type=True),
    "cce": Profile(
        "cce", logits_in_input_type=True, gradient_in_input_type=True, skipped_below=1 / 32, z_loss_in_input_type=True
    ),
    "torchtune": Profile("torchtune", logits_in_input_type=True, gradient_in_input_type=True),
    "megatron": Profile("megatron", logits_in_input_type=True, gradient_in_input_type=True),
    "loop": Profile("loop", logits_in_input_type=True, gradient_in_input_type=True, running_sums=True),
}


def profile_named(name: object) -> Profile:
    """The profile called ``name``, or an :class:`InvalidInput` naming the argument."""
    if not isinstance(name, str) or name not in PROFILES:
        raise InvalidInput(
            f"unknown profile {name!r}", field="profile", hint=f"use one of {', '.join(PROFILES)}"
        )
    return PROFILES[name]
