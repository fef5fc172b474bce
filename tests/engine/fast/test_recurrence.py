"""The sampler update as a fitted per-step recurrence reproduces the real diffusers schedulers."""

import pytest
import torch
from diffusers import DDIMScheduler

from dit_demo.engine.fast.recurrence import NotCapturable, _replay, _trajectory, linear_recurrence
from dit_demo.engine.model.sources import DIT_SCHEDULER, make_scheduler


@pytest.mark.parametrize("name", ["dpm", "euler"])
@pytest.mark.parametrize("steps", [1, 2, 7, 25])
def test_recurrence_reproduces_the_scheduler(name, steps):
    scheduler = make_scheduler(name)
    recurrence = linear_recurrence(scheduler, steps)
    assert recurrence.steps == steps and recurrence.coefficients.shape == (steps, 5)
    xs, _, eps, nexts = _trajectory(scheduler, steps, 3.0, seed=7)  # fresh vectors, another scale
    for got, want in zip(_replay(recurrence.coefficients, xs, eps), nexts):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6 * float(want.abs().max()))


def test_first_order_steps_use_no_history_and_dpm_second_order_does():
    dpm = linear_recurrence(make_scheduler("dpm"), 25).coefficients
    assert dpm[0, 3:].abs().max() == 0  # step 0 is first order
    assert dpm[1:-1, 3:].abs().max() > 0.1  # DPM-Solver++ 2M uses the previous prediction
    euler = linear_recurrence(make_scheduler("euler"), 25).coefficients
    assert euler[:, 3:].abs().max() == 0
    assert float(euler[0, 0]) < 1  # Euler rescales the model input


def test_timesteps_are_the_schedulers_and_its_state_is_untouched():
    scheduler = make_scheduler("euler")
    scheduler.set_timesteps(10)
    before = scheduler.timesteps.clone()
    recurrence = linear_recurrence(scheduler, 25)
    assert torch.equal(scheduler.timesteps, before) and scheduler.step_index is None
    fresh = make_scheduler("euler")
    fresh.set_timesteps(25)
    assert torch.equal(recurrence.timesteps, fresh.timesteps) and recurrence.timesteps.dtype == torch.float32


def test_clamping_sampler_is_not_capturable_but_unclamped_ddim_is():
    with pytest.raises(NotCapturable, match="clip_sample"):
        linear_recurrence(make_scheduler("ddim"), 25)  # DDIM's default clip_sample clamps x0
    recurrence = linear_recurrence(DDIMScheduler(**DIT_SCHEDULER, clip_sample=False), 25)
    assert recurrence.steps == 25
