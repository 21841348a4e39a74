"""The faust-streaming adapter: decode, call the Scorer, produce, then let the offsets commit."""
