"""Networks: small `nn.Module`s, one family per file, each returning logits (or raw outputs)."""
