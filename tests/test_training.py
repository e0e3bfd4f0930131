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
