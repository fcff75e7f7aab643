"""A small decoder-only (causal) transformer over a flattened map of discrete codes.

Tokens are read in raster order; position t is predicted from a start token and tokens < t, so
p(c) = Π_t p(c_t | c_<t) (an autoregressive prior, as the VQ-VAE paper's PixelCNN, with a
receptive field over the whole prefix and no blind spot). Pre-norm blocks, learned positions.
"""

from __future__ import annotations

import torch
from torch import nn


class CausalTransformer(nn.Module):
    """tokens [N, t] (0 <= t < seq_len) -> logits [N, t + 1, vocab_size].

    Row i of the output is the distribution of token i given tokens[:, :i]; so training feeds
    tokens[:, :-1] and compares with tokens, and sampling feeds the prefix drawn so far and reads
    the last row.
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.start = vocab_size  # an extra token id that opens every sequence
        self.embed = nn.Embedding(vocab_size + 1, dim)
        self.position = nn.Parameter(torch.randn(1, seq_len, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, t = tokens.shape
        if t >= self.seq_len or tokens.dtype != torch.long:
            raise ValueError(f"expected long tokens [N, t] with t < {self.seq_len}, got {tuple(tokens.shape)}")
        start = torch.full((n, 1), self.start, dtype=torch.long, device=tokens.device)
        h = self.embed(torch.cat([start, tokens], dim=1)) + self.position[:, : t + 1]
        mask = nn.Transformer.generate_square_subsequent_mask(t + 1, device=tokens.device)
        h = self.blocks(h, mask=mask, is_causal=True)
        return self.head(self.norm(h))
