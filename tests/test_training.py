import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import labutils as lu


def _regression(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([[1.5], [-2.0], [0.5]], dtype=torch.float64) + 0.3
    y = y + 0.05 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    return X, y


def test_fit_reaches_the_least_squares_solution():
    torch.manual_seed(0)
    X, y = _regression()
    model = torch.nn.Linear(3, 1).double()
    history = lu.fit(model, DataLoader(TensorDataset(X, y), batch_size=256), epochs=300,
                     optimizer=torch.optim.SGD(model.parameters(), lr=0.3),
                     loss_fn=torch.nn.functional.mse_loss)
    A = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)
    solution = torch.linalg.lstsq(A, y).solution.squeeze()
    learned = torch.cat([model.weight.detach().squeeze(), model.bias.detach()])
    torch.testing.assert_close(learned, solution, rtol=1e-4, atol=1e-4)
    assert history.epochs == 300 and set(history.keys()) == {"train_loss", "lr", "seconds"}
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_history_means_are_weighted_by_batch_size():
    X, y = _regression(n=10)
    model = torch.nn.Linear(3, 1).double()
    loader = DataLoader(TensorDataset(X, y), batch_size=4)  # batches of 4, 4 and 2
    with torch.no_grad():
        expected = torch.nn.functional.mse_loss(model(X), y).item()
    history = lu.fit(model, loader, val_loader=loader, epochs=1,
                     loss_fn=torch.nn.functional.mse_loss,
                     optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
    assert history["val_loss"][0] == pytest.approx(expected, rel=1e-12)
    assert history["train_loss"][0] == pytest.approx(expected, rel=1e-12)


def test_keep_best_restores_the_best_epoch():
    X, y = _regression()
    model = torch.nn.Linear(3, 1).double()
    loader = DataLoader(TensorDataset(X, y), batch_size=32)
    snapshots = []

    def spoil_after_three(epoch, history):  # epochs 4 and 5 are made worse on purpose
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        if epoch == 2:
            for g in optimizer.param_groups:
                g["lr"] = 5.0

    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    history = lu.fit(model, loader, val_loader=loader, epochs=5, optimizer=optimizer,
                     loss_fn=torch.nn.functional.mse_loss, on_epoch_end=spoil_after_three,
                     clip_grad_norm=100.0)
    best = min(range(5), key=lambda e: history["val_loss"][e])
    assert history.best_epoch == best
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, snapshots[best][name], rtol=0, atol=0)


def test_gradient_clipping_bounds_each_step():
    X, y = _regression(n=32)
    y = y * 1000  # huge gradients
    model = torch.nn.Linear(3, 1).double()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    lu.fit(model, DataLoader(TensorDataset(X, y), batch_size=32), epochs=1, clip_grad_norm=0.5,
           optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
           loss_fn=torch.nn.functional.mse_loss)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.linalg.vector_norm(after - before) <= 0.1 * 0.5 + 1e-9


def test_custom_step_metrics_and_scheduler():
    X = torch.randn(64, 5)
    labels = (X[:, 0] > 0).long()
    lengths = torch.full((64,), 5)
    model = torch.nn.Linear(5, 2)
    seen = []

    def step(model, batch):
        x, length, target = batch
        seen.append(int(length[0]))
        out = model(x)
        return torch.nn.functional.cross_entropy(out, target), out, target

    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = lu.fit(model, DataLoader(TensorDataset(X, lengths, labels), batch_size=16),
                     epochs=3, step=step, optimizer=optimizer, scheduler=scheduler, live_plot=True,
                     metrics={"acc": lambda out, t: (out.argmax(1) == t).float().mean()})
    assert history["lr"] == [1.0, 0.5, 0.25]
    assert all(0.0 <= a <= 1.0 for a in history["train_acc"]) and set(seen) == {5}


def test_bad_arguments_and_divergence_are_reported():
    model = torch.nn.Linear(1, 1)
    loader = [(torch.ones(2, 1), torch.ones(2, 1))]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        lu.fit(model, loader, epochs=1, optimizer=opt)
    with pytest.raises(ValueError, match="no batch"):
        lu.fit(model, [], epochs=1, optimizer=opt, loss_fn=torch.nn.functional.mse_loss)
    with pytest.raises(FloatingPointError, match="learning rate"):
        lu.fit(model, [(torch.ones(2, 1), torch.full((2, 1), float("nan")))], epochs=1,
               optimizer=opt, loss_fn=torch.nn.functional.mse_loss)


def test_to_device_handles_nested_batches():
    batch = {"x": torch.ones(2), "pair": (torch.zeros(1), [torch.ones(1)]), "n": 3}
    moved = lu.training.to_device(batch, torch.device("cpu"))
    assert moved["n"] == 3 and isinstance(moved["pair"], tuple)
    assert torch.equal(moved["pair"][1][0], torch.ones(1))


def test_a_metric_added_by_the_hook_can_be_monitored():
    X, y = _regression(n=64)
    model = torch.nn.Linear(3, 1).double()
    scores = [0.2, 0.9, 0.5]

    def score(epoch, history):
        history.append("val_score", scores[epoch])

    history = lu.fit(model, DataLoader(TensorDataset(X, y), batch_size=64), epochs=3,
                     optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
                     loss_fn=torch.nn.functional.mse_loss, on_epoch_end=score,
                     monitor="val_score", mode="max")
    assert history.best_epoch == 1 and history["val_score"] == scores


def _regression_loader(n=40, batch=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(n, generator=g)
    data = torch.utils.data.TensorDataset(x, y[:, None])
    return torch.utils.data.DataLoader(data, batch_size=batch), x, y[:, None]


def test_evaluate_equals_the_loss_on_the_whole_set():
    loader, x, y = _regression_loader(n=37, batch=8)   # a last batch of 5
    model = torch.nn.Linear(3, 1)
    result = lu.evaluate(model, loader, loss_fn=torch.nn.functional.mse_loss,
                         metrics={"mae": lambda out, t: (out - t).abs().mean()})
    with torch.no_grad():
        out = model(x)
    assert result["loss"] == pytest.approx(torch.nn.functional.mse_loss(out, y).item(), rel=1e-6)
    assert result["mae"] == pytest.approx((out - y).abs().mean().item(), rel=1e-6)
    assert not model.training


def test_a_corpus_metric_is_a_ratio_of_sums_not_a_mean_of_ratios():
    # two batches: 1 error in 1 reference symbol, then 0 errors in 9 symbols
    batches = [(torch.zeros(1, 1), torch.tensor([[1.0, 1.0]])),
               (torch.zeros(1, 1), torch.tensor([[0.0, 9.0]]))]

    def errors_over_length(out, target):
        return target[:, 0].sum(), target[:, 1].sum()

    model = torch.nn.Linear(1, 1)
    result = lu.evaluate(model, batches, metrics={"rate": errors_over_length})
    assert result == {"rate": pytest.approx(1 / 10)}   # a mean of ratios would give 0.5
    with pytest.raises(ValueError, match="numerator, denominator"):
        lu.evaluate(model, batches, metrics={"bad": lambda o, t: (1, 2, 3)})


def test_evaluate_refuses_an_empty_request_and_bad_devices():
    loader, _, _ = _regression_loader()
    model = torch.nn.Linear(3, 1)
    with pytest.raises(ValueError, match="nothing to compute"):
        lu.evaluate(model, loader)
    with pytest.raises(ValueError, match="not both"):
        lu.evaluate(model, loader, loss_fn=torch.nn.functional.mse_loss,
                    step=lambda m, b: (None, None, None))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            lu.evaluate(model, loader, loss_fn=torch.nn.functional.mse_loss, device="cuda")


def test_on_batch_end_sees_every_step_with_its_loss():
    loader, _, _ = _regression_loader(n=40, batch=8)   # 5 steps an epoch
    model = torch.nn.Linear(3, 1)
    seen = []

    def hook(step, m, loss):
        assert m is model and m.training
        seen.append((step, loss))
        lu.evaluate(m, loader, loss_fn=torch.nn.functional.mse_loss)   # leaves eval mode

    lu.fit(model, loader, epochs=2, optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
           loss_fn=torch.nn.functional.mse_loss, on_batch_end=hook, keep_best=False)
    assert [s for s, _ in seen] == list(range(1, 11))
    assert seen[-1][1] < seen[0][1]


def test_fit_refuses_a_model_without_parameters_and_an_absent_gpu():
    loader, _, _ = _regression_loader()
    with pytest.raises(ValueError, match="no parameters|has none"):
        lu.fit(torch.nn.Identity(), loader, epochs=1,
               optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1),
               loss_fn=torch.nn.functional.mse_loss)
    if not torch.cuda.is_available():
        model = torch.nn.Linear(3, 1)
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            lu.fit(model, loader, epochs=1, device="cuda",
                   optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                   loss_fn=torch.nn.functional.mse_loss)


def test_accuracy_agrees_with_scikit_learn():
    from sklearn.metrics import accuracy_score

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(50, 4, generator=g)
    target = torch.randint(0, 4, (50,), generator=g)
    expected = accuracy_score(target.numpy(), logits.argmax(1).numpy())
    assert lu.metrics.accuracy(logits, target) == pytest.approx(expected)
    assert lu.metrics.accuracy(logits.argmax(1), target) == pytest.approx(expected)
    with pytest.raises(ValueError, match="do not match"):
        lu.metrics.accuracy(logits[:3], target)
