import jax
import jax.numpy as jnp


def softmax_loss(logits, labels):
    shifted = logits - jnp.max(logits, axis=1, keepdims=True)
    log_p = shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=1, keepdims=True))
    n = logits.shape[0]
    loss = -jnp.mean(log_p[jnp.arange(n), labels])
    grad = (jnp.exp(log_p) - jax.nn.one_hot(labels, logits.shape[1], dtype=logits.dtype)) / n
    return loss, grad
