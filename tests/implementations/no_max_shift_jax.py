import jax
import jax.numpy as jnp


def softmax_loss(logits, labels):
    p = jnp.exp(logits) / jnp.sum(jnp.exp(logits), axis=1, keepdims=True)
    n = logits.shape[0]
    loss = -jnp.mean(jnp.log(p[jnp.arange(n), labels]))
    return loss, (p - jax.nn.one_hot(labels, logits.shape[1], dtype=logits.dtype)) / n
