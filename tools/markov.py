"""The synthetic language the distillation and calibration fixtures are trained on (NumPy only,
so benchmarks can sample it without importing torch): an order-2 Markov chain with, for each
pair (a, b), 3 allowed next tokens weighted by Dirichlet(0.5)."""
import numpy as np


def markov_language(vocab, seed):
    """(next tokens [vocab, vocab, 3], their probabilities [vocab, vocab, 3])."""
    rng = np.random.default_rng(seed)
    nxt = np.zeros((vocab, vocab, 3), dtype=np.int64)
    prob = np.zeros((vocab, vocab, 3))
    for a in range(vocab):
        for b in range(vocab):
            nxt[a, b] = rng.choice(vocab, size=3, replace=False)
            prob[a, b] = rng.dirichlet([0.5, 0.5, 0.5])
    return nxt, prob


def sample_sequences(nxt, prob, n, T, rng):
    """n sequences of T tokens: the first two uniform, then the chain."""
    vocab = nxt.shape[0]
    out = np.zeros((n, T), dtype=np.int64)
    out[:, 0] = rng.integers(0, vocab, n)
    out[:, 1] = rng.integers(0, vocab, n)
    for t in range(2, T):
        a, b = out[:, t - 2], out[:, t - 1]
        c = np.cumsum(prob[a, b], axis=1)
        k = (rng.random(n)[:, None] > c).sum(axis=1).clip(0, 2)
        out[:, t] = nxt[a, b, k]
    return out
