"""The training loop's end: early stopping followed by a cool-down from the best weights, with or without an average
of the weights (netsynth.train).

The validation losses are scripted (a plateau after epoch 8), so that when training stops, which weights it
goes back to and the learning rate of every epoch are known in advance.
"""
import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import netsynth.train as T
from netsynth.models.options import TrainSettings

STEPS = 9  # 100 examples: 10 held out, 90 in batches of 10
EPOCH = T.Trainer.epoch  # the real one, which each run's recording wraps


class Killed(Exception):
    pass


SCRIPT = [10, 9, 8, 7, 6, 5, 4, 3, 3.5, 3.6, 2.9, 3.7]  # best at epoch 8, a plateau, a better epoch 11


def mse(model, x, y):
    return torch.nn.functional.mse_loss(model(x), y)


def run(monkeypatch, epochs, start=0, checkpoint_dir=None, resume=False, stop_before=None, ema=False, validated=None):
    """Train a linear model with the scripted validation losses; returns (history, [(lr, weights) at the start
    of every epoch run], final weights). `stop_before`: an epoch (1-based) at whose start the run is killed;
    `validated`, a list, gets the weights that each validation saw."""
    losses = iter(SCRIPT[start:])

    def evaluate(*args):
        if validated is not None:
            validated.append(model.weight.detach().clone())
        return next(losses)
    monkeypatch.setattr(T, "_evaluate", evaluate)
    seen = []

    def recording(self, module, loader, optimizer, scheduler, title):
        if len(seen) + start + 1 == stop_before:
            raise Killed
        seen.append((optimizer.param_groups[0]["lr"], self.module.weight.detach().clone()))
        return EPOCH(self, module, loader, optimizer, scheduler, title)
    monkeypatch.setattr(T.Trainer, "epoch", recording)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(1))
    settings = TrainSettings(epochs=epochs, batch_size=10, lr=0.1, patience=2, warmup_fraction=0.01, device="cpu",
                             checkpoint_every=0, ema=ema)
    history = T.fit_module(model, mse, (x, x.sum(1, keepdim=True)), settings, checkpoint_dir, resume)
    return history, seen, model.weight.detach().clone()


def test_a_plateau_ends_with_a_cool_down_from_the_best_weights_to_a_learning_rate_of_zero(monkeypatch):
    history, seen, final = run(monkeypatch, epochs=30)
    # patience 2 runs out after epoch 10; the cool-down is a fifth of those 10 epochs, then training ends
    assert history["epochs"] == list(range(1, 13))
    assert torch.equal(seen[10][1], seen[8][1])  # epoch 11 starts from the weights after epoch 8, the best
    total = 30 * STEPS
    warmup = max(1, int(0.01 * total))
    cosine = 0.1 * 0.5 * (1 + math.cos(math.pi * (10 * STEPS - warmup) / (total - warmup)))
    assert seen[10][0] == pytest.approx(cosine)  # the cool-down begins at the cosine's rate
    assert seen[11][0] == pytest.approx(cosine / 2)  # and falls linearly to 0 over its 2 epochs
    assert history["best_val_loss"] == 2.9
    assert torch.equal(final, seen[11][1])  # the weights after epoch 11, the best, are the model's


def test_a_cool_down_that_would_reach_the_epoch_cap_is_the_cosines_own_end(monkeypatch):
    history, seen, final = run(monkeypatch, epochs=12)
    assert history["epochs"] == list(range(1, 11))  # stopped as plain early stopping does
    assert torch.equal(final, seen[8][1])  # with the best weights, those after epoch 8


def test_a_run_killed_in_its_cool_down_resumes_to_the_uninterrupted_model(monkeypatch, tmp_path):
    whole, _, expected = run(monkeypatch, epochs=30)
    with pytest.raises(Killed):
        run(monkeypatch, epochs=30, checkpoint_dir=tmp_path, stop_before=12)
    resumed, seen, final = run(monkeypatch, epochs=30, start=11, checkpoint_dir=tmp_path, resume=True)
    assert resumed["epochs"] == whole["epochs"] and resumed["val_loss"] == whole["val_loss"]
    assert len(seen) == 1 and torch.equal(final, expected)


def reference_average(steps: list[torch.Tensor]) -> list[torch.Tensor]:
    """The average after every optimizer step, written out: after step t it moves t^(-2/3) of the way to the
    weights (all of the way at the first step), its decay capped at 0.9999."""
    averages, average = [], None
    for t, weights in enumerate(steps, start=1):
        decay = 0.0 if t == 1 else min(0.9999, 1 - t ** (-2 / 3))
        average = weights.clone() if average is None else decay * average + (1 - decay) * weights
        averages.append(average)
    return averages


def test_with_ema_training_validates_keeps_and_ends_with_the_average_of_the_weights(monkeypatch):
    steps, validated = [], []
    hook = register_optimizer_step_post_hook(
        lambda opt, *_: steps.append(opt.param_groups[0]["params"][0].detach().clone()))
    try:
        history, seen, final = run(monkeypatch, epochs=30, ema=True, validated=validated)
    finally:
        hook.remove()
    assert history["epochs"] == list(range(1, 13)) and len(steps) == 12 * STEPS
    expected = reference_average(steps[:10 * STEPS])  # the first 10 epochs, before the cool-down
    for epoch in range(10):
        torch.testing.assert_close(validated[epoch], expected[(epoch + 1) * STEPS - 1], rtol=0, atol=1e-6)
        assert not torch.equal(validated[epoch], steps[(epoch + 1) * STEPS - 1])  # an average, not the weights
    assert torch.equal(seen[10][1], validated[7])  # the cool-down starts from the best average, epoch 8's
    cooled = reference_average(steps[10 * STEPS:])  # and averages its own steps
    torch.testing.assert_close(validated[10], cooled[STEPS - 1], rtol=0, atol=1e-6)
    assert torch.equal(final, validated[10])  # the model ends with the best average, epoch 11's


def test_a_run_with_ema_killed_and_resumed_gives_the_uninterrupted_model(monkeypatch, tmp_path):
    whole, _, expected = run(monkeypatch, epochs=30, ema=True)
    with pytest.raises(Killed):
        run(monkeypatch, epochs=30, checkpoint_dir=tmp_path, stop_before=6, ema=True)
    with pytest.raises(T.NetsynthError, match="trained with --ema; resume it the same way"):
        run(monkeypatch, epochs=30, start=5, checkpoint_dir=tmp_path, resume=True)
    resumed, _, final = run(monkeypatch, epochs=30, start=5, checkpoint_dir=tmp_path, resume=True, ema=True)
    assert resumed["val_loss"] == whole["val_loss"] and torch.equal(final, expected)


def test_the_loader_reads_whole_batches_the_same_as_flow_by_flow(monkeypatch):
    """Trainer.split's loader against a plain TensorDataset loader, the reference: the same batches in the same order
    over two epochs (a short last batch included), read with one __getitems__ per batch and no __getitem__."""
    x, y = torch.arange(230.0)[:, None], torch.arange(230)
    trainer = T.Trainer(torch.nn.Linear(1, 1), mse, TrainSettings(batch_size=16, seed=3))
    loader, (val_x, _) = trainer.split((x, y))
    train_x, train_y = loader.dataset.tensors
    reference = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train_x, train_y), batch_size=16,
                                            shuffle=True, generator=torch.Generator().manual_seed(3))
    reads = []
    monkeypatch.setattr(T.WholeBatches, "__getitem__", lambda self, i: pytest.fail("read flow by flow"))
    real = T.WholeBatches.__getitems__
    monkeypatch.setattr(T.WholeBatches, "__getitems__", lambda self, index: reads.append(len(index)) or real(self, index))
    for _ in range(2):
        batches = list(loader)
        expected = list(reference)
        assert len(batches) == len(expected) == math.ceil(len(train_x) / 16)
        for got, want in zip(batches, expected, strict=True):
            assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert reads == [len(b[0]) for b in batches] * 2 and len(val_x) == 23


def test_the_fused_optimizer_steps_as_the_default_one(monkeypatch):
    """The loop's AdamW is fused (one kernel over every parameter); the reference is torch's default form."""
    default_adamw, used = torch.optim.AdamW, []

    def adamw(*args, fused=None, **kwargs):
        used.append(fused)
        return default_adamw(*args, fused=fused if forced is None else forced, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", adamw)
    forced = None
    _, _, fused = run(monkeypatch, epochs=30)
    forced = False
    _, _, reference = run(monkeypatch, epochs=30)
    assert used == [True, True]  # what the loop asked for, both times
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-6)
