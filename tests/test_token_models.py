"""TokenFormer and CodebookFormer: masking statistics, frontends, a tiny pretraining overfit."""

import torch

from mirformer.models.encoder import EncoderConfig
from mirformer.models.former import Former, load_former
from mirformer.objectives.token_masking import IGNORE, TokenMaskConfig, TokenObjective, mask_tokens

ENC = EncoderConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.0, max_len=128)
V = 50


def test_bert_masking_fractions():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, V, (256, 512), generator=g)
    inputs, mask, targets = mask_tokens(ids, None, TokenMaskConfig(), vocab_size=V, generator=g)
    assert abs(mask.float().mean().item() - 0.3) < 0.005
    chosen_in, chosen_id = inputs[mask], ids[mask]
    masked = (chosen_in == V).float().mean().item()
    kept = (chosen_in == chosen_id).float().mean().item()  # includes random draws of the same id (1/V)
    assert abs(masked - 0.8) < 0.01 and abs(kept - (0.1 + 0.1 / V)) < 0.01
    assert ((chosen_in != V) & (chosen_in != chosen_id)).float().mean().item() > 0.09
    assert torch.equal(inputs[~mask], ids[~mask])
    assert torch.equal(targets[mask], ids[mask]) and (targets[~mask] == IGNORE).all()
    assert ids.max() < V  # the batch itself is untouched


def test_padding_is_never_chosen():
    pad = torch.zeros(64, 40, dtype=torch.bool)
    pad[:, 30:] = True
    inputs, mask, targets = mask_tokens(torch.randint(0, V, (64, 40)), pad, TokenMaskConfig(), vocab_size=V,
                                        generator=torch.Generator().manual_seed(1))
    assert not mask[pad].any() and (targets[pad] == IGNORE).all()


def test_token_kinds_shapes_and_cls_prepended():
    ids = torch.randint(0, V, (3, 20))
    for frontend in ("embedding", "codebook"):
        model = Former(frontend=frontend, encoder=ENC, input_dim=V, n_classes=4, codebook_dim=8)
        assert model.forward_encoder(ids).shape == (3, 21, 32)
        assert model(ids).shape == (3, 4)
        assert model.forward_pretrain(ids).shape == (3, 20, V)


def test_codebook_frontend_zeroes_mask_id_and_survives_checkpoint(tmp_path):
    model = Former(frontend="codebook", encoder=ENC, input_dim=V, codebook_dim=8)
    book = torch.randn(V, 8)
    model.frontend.set_codebook(book)
    standardised = (book - book.mean(0)) / book.std(0, correction=0)
    assert torch.allclose(model.frontend.codebook[:V], standardised, atol=1e-6)
    assert (model.frontend.codebook[V] == 0).all()  # MASK: the zero vector, i.e. the mean code
    # Weighted by usage: the statistics of the tokens read, where unused codes do not count.
    counts = torch.zeros(V)
    counts[:3] = torch.tensor([5.0, 1.0, 2.0])
    model.frontend.set_codebook(book, counts=counts)
    tokens = book[torch.tensor([0] * 5 + [1] + [2] * 2)]
    torch.testing.assert_close(model.frontend.codebook[:V], (book - tokens.mean(0)) / tokens.std(0, correction=0))
    model.save(tmp_path / "cb.pt")
    again = load_former(tmp_path / "cb.pt", n_classes=3)
    assert torch.equal(again.frontend.codebook, model.frontend.codebook)


def test_token_pretraining_loss_falls():
    torch.manual_seed(0)
    # Sequences with structure to learn: token t+1 = token t + 1 (mod V).
    v = 12
    start = torch.randint(0, v, (32, 1))
    ids = (start + torch.arange(24)) % v
    batch = {"x": ids, "pad": torch.zeros_like(ids, dtype=torch.bool)}
    for frontend in ("embedding", "codebook"):
        model = Former(frontend=frontend, encoder=ENC, input_dim=v, codebook_dim=8)
        if frontend == "codebook":
            model.frontend.set_codebook(torch.randn(v, 8))
        objective = TokenObjective(TokenMaskConfig(), v)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        losses = []
        for step in range(150):
            loss = objective(model, batch, torch.Generator().manual_seed(step))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert sum(losses[-5:]) / 5 < 0.2 * sum(losses[:5]) / 5, (frontend, losses[:5], losses[-5:])


def test_several_codebooks_embed_mask_and_predict_each():
    """Ids (B, L, C): TokenFormer sums one table per codebook; CodebookFormer sums (or weighs) the
    codes' vectors; masking chooses whole frames; the loss is the mean of each codebook's."""
    from mirformer.models.frontends import CodebookProjection, TokenEmbedding
    from mirformer.objectives.token_masking import masked_cross_entropy

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, V, (2, 40, 3), generator=g)
    emb = TokenEmbedding(V, 16, codebooks=3)
    want = emb.embeds[0](ids[..., 0]) + emb.embeds[1](ids[..., 1]) + emb.embeds[2](ids[..., 2])
    torch.testing.assert_close(emb(ids), want)

    books = torch.randn(3, V, 8, generator=g)
    proj = CodebookProjection(V, 16, codebook_dim=8, codebooks=3, combine="sum")
    proj.set_codebook(books)
    latent = books[0][ids[..., 0]] + books[1][ids[..., 1]] + books[2][ids[..., 2]]
    torch.testing.assert_close(proj(ids), proj.proj((latent - proj.mean) / proj.std))
    weighted = CodebookProjection(V, 16, codebook_dim=8, codebooks=3, combine="weighted")
    weighted.set_codebook(books)
    with torch.no_grad():
        weighted.weights.copy_(torch.tensor([0.0, 50.0, 0.0]))  # all weight on codebook 2
    torch.testing.assert_close(weighted(ids), weighted.proj(weighted.codebook[1][ids[..., 1]]), atol=1e-5, rtol=0)

    inputs, mask, targets = mask_tokens(ids, None, TokenMaskConfig(), vocab_size=V, generator=g)
    assert mask.any() and inputs.shape == targets.shape == ids.shape
    assert ((targets != IGNORE) == mask[..., None]).all()  # a chosen frame: every codebook a target
    masked = inputs == V
    assert (masked == masked[..., :1]).all()  # MASK in every codebook of a frame or in none
    logits = torch.randn(2, 40, 3, V, generator=g)
    each = [torch.nn.functional.cross_entropy(logits[:, :, c][mask], ids[..., c][mask]) for c in range(3)]
    torch.testing.assert_close(masked_cross_entropy(logits, targets), torch.stack(each).mean())
