#!/usr/bin/env python3
"""Write a llama-architecture GGUF (float32, random weights) with the text
dimensions of a SmolVLM model directory's config.json, for llama.cpp's
llama-bench: the same shapes as the decoder snapvlm runs, so decode and
prefill speeds compare on equal work. Weights are random (normal, std 0.02),
as in the project's test models; the vocabulary is placeholder tokens.

usage: gguf_random.py MODEL_DIR OUT.gguf   (PYTHONPATH must hold llama.cpp's gguf-py)
"""
import json
import sys

import numpy as np
import gguf


def main():
    model_dir, out = sys.argv[1], sys.argv[2]
    with open(f"{model_dir}/config.json") as f:
        cfg = json.load(f)
    t = cfg.get("text_config", cfg)
    hidden, layers = t["hidden_size"], t["num_hidden_layers"]
    heads, kv = t["num_attention_heads"], t.get("num_key_value_heads", t["num_attention_heads"])
    head_dim = t.get("head_dim", hidden // heads)
    inter, vocab = t["intermediate_size"], t["vocab_size"]

    w = gguf.GGUFWriter(out, "llama")
    w.add_context_length(t.get("max_position_embeddings", 8192))
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(t.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(t.get("rms_norm_eps", 1e-5)))
    w.add_vocab_size(vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    # A SentencePiece-style vocabulary of placeholders: llama-bench feeds
    # token ids, it never tokenizes text.
    w.add_tokenizer_model("llama")
    w.add_token_list([b"<unk>", b"<s>", b"</s>"] + [f"<t{i}>".encode() for i in range(3, vocab)])
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([2, 3, 3] + [1] * (vocab - 3))
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    rng = np.random.default_rng(0)

    def rand(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    ones = lambda n: np.ones(n, dtype=np.float32)  # noqa: E731
    w.add_tensor("token_embd.weight", rand(vocab, hidden))
    for i in range(layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones(hidden))
        w.add_tensor(p + "attn_q.weight", rand(heads * head_dim, hidden))
        w.add_tensor(p + "attn_k.weight", rand(kv * head_dim, hidden))
        w.add_tensor(p + "attn_v.weight", rand(kv * head_dim, hidden))
        w.add_tensor(p + "attn_output.weight", rand(hidden, heads * head_dim))
        w.add_tensor(p + "ffn_norm.weight", ones(hidden))
        w.add_tensor(p + "ffn_gate.weight", rand(inter, hidden))
        w.add_tensor(p + "ffn_up.weight", rand(inter, hidden))
        w.add_tensor(p + "ffn_down.weight", rand(hidden, inter))
    w.add_tensor("output_norm.weight", ones(hidden))
    w.add_tensor("output.weight", rand(vocab, hidden))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
