"""Progress lines: a few per fold, with rate, ETA and the current metric."""

from codeprop.train import progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_fold_gets_a_line_every_interval_and_one_at_its_end():
    clock, lines = Clock(), []
    report = progress.Progress(2, epochs=60, every_seconds=30, write=lines.append, clock=clock)
    report.start_fold(0)
    for epoch in range(1, 61):
        clock.now = epoch * 1.0  # one epoch a second, 10 steps an epoch
        report.epoch(
            {"epoch": epoch, "steps": 10 * epoch, "train_loss": 0.5, "validation_accuracy": 0.75}
        )
    report.end_fold({"best_epoch": 41, "best_validation_accuracy": 0.8, "accuracy": 0.7})
    assert lines == [
        "fold 1/2  epoch 30/60  1.0 epochs/s  10 steps/s  train loss 0.500  val acc 75.0%"
        "  fold ETA 30s",
        "fold 1/2  done in 60.0 s  best epoch 41  val acc 80.0%  test acc 70.0%  ETA 1m 0s",
    ]
    report.start_fold(1)
    clock.now = 70.0
    report.end_fold({"best_epoch": 3, "best_validation_accuracy": 0.5, "accuracy": 0.5})
    assert lines[-1] == "fold 2/2  done in 10.0 s  best epoch 3  val acc 50.0%  test acc 50.0%"


def test_short_folds_print_only_their_end():
    clock, lines = Clock(), []
    report = progress.Progress(1, epochs=5, every_seconds=30, write=lines.append, clock=clock)
    report.start_fold(0)
    for epoch in range(1, 6):
        clock.now = epoch * 0.1
        report.epoch({"epoch": epoch, "train_loss": 0.1})
    report.end_fold({"best_epoch": 5, "accuracy": 1.0})
    assert len(lines) == 1 and lines[0].startswith("fold 1/1  done in 0.5 s  best epoch 5")


def test_duration():
    assert [progress.duration(s) for s in (4.4, 65, 3725)] == ["4s", "1m 5s", "1h 2m"]


def test_slow_epochs_and_steps_read_as_seconds_each():
    clock, lines = Clock(), []
    report = progress.Progress(1, epochs=10, every_seconds=30, write=lines.append, clock=clock)
    report.start_fold(0)
    clock.now = 300.0  # an LLM epoch of 35 steps on a CPU
    report.epoch({"epoch": 1, "steps": 35, "train_loss": 0.7})
    assert lines == ["fold 1/1  epoch 1/10  300.0 s/epoch  8.6 s/step  train loss 0.700"
                     "  fold ETA 45m 0s"]  # fmt: skip


def test_a_resumed_fold_counts_only_the_epochs_it_trains():
    clock, lines = Clock(), []
    report = progress.Progress(1, epochs=10, every_seconds=30, write=lines.append, clock=clock)
    report.start_fold(0)
    for epoch in range(7, 10):  # epochs 1-6 were restored from a saved state
        clock.now = (epoch - 6) * 20.0
        report.epoch({"epoch": epoch, "steps": 10 * epoch, "train_loss": 0.5})
    assert lines == ["fold 1/1  epoch 8/10  20.0 s/epoch  2.0 s/step  train loss 0.500"
                     "  fold ETA 40s"]  # fmt: skip


def test_long_passes_report_from_inside_and_short_ones_do_not():
    clock, lines = Clock(), []
    report = progress.Progress(1, epochs=2, every_seconds=30, write=lines.append, clock=clock)
    report.start_fold(0)
    clock.now = 5.0  # after the first call of 16 steps (compilation included)
    report.within("epoch 1/2", 16, 975, "step")
    for calls in range(2, 8):  # 16 steps every 48 s
        clock.now = 5.0 + 48.0 * (calls - 1)
        report.within("epoch 1/2", 16 * calls, 975, "step")
    # The rate and ETA count from the first report: 3.0 s a step, 943 steps left.
    assert lines[0] == "fold 1/1  epoch 1/2  32/975 steps  3.0 s/step  epoch ETA 47m 9s"
    assert len(lines) == 6  # one a call: each 48 s after the last line
    # A new pass starts its own rate; rows of an embedding pass at 40 rows/s.
    clock.now = 1000.0
    report.within("embedding", 320, 52_000, "row")
    clock.now = 1040.0
    report.within("embedding", 1_920, 52_000, "row")
    assert lines[-1] == "fold 1/1  embedding  1,920/52,000 rows  40 rows/s  ETA 20m 52s"
    # A pass of a few seconds: nothing.
    lines.clear()
    for done in range(1, 20):
        clock.now = 2000.0 + done
        report.within("epoch 2/2", done, 20, "step")
    assert lines == []
