import pytest

from mer_ensemble.errors import ConfigError
from mer_ensemble.tasks import list_tasks, resolve_task


def test_presets_follow_the_competitions():
    assert list_tasks() == ["generic", "meiju2025-track1", "meiju2025-track2", "mer2024-noise", "mer2024-semi"]
    mer = resolve_task("mer2024-semi")
    assert mer.target_names == ["discrete"]
    assert mer.targets[0].classes == ("neutral", "angry", "happy", "sad", "worried", "surprise")
    assert mer.targets[0].metric == "weighted_f1" and mer.submission == "mer2024"
    t1 = resolve_task("meiju2025-track1")
    assert t1.targets[0].classes == ("happy", "surprise", "sad", "disgust", "anger", "fear", "neutral")
    assert t1.targets[1].classes == ("questioning", "agreeing", "acknowledging", "encouraging", "consoling",
                                     "suggesting", "wishing", "neutral")
    assert [t.metric for t in t1.targets] == ["weighted_f1", "weighted_f1"]
    assert t1.combined({"emotion": 0.6, "intent": 0.3}) == pytest.approx(0.4)
    assert t1.column_for("emotion") == "emo_pred" and t1.zip_submission
    t2 = resolve_task("meiju2025-track2")
    assert [t.metric for t in t2.targets] == ["micro_f1", "micro_f1"]


def test_generic_takes_sorted_classes_from_data_unless_given():
    task = resolve_task("generic", targets=["emotion"], observed={"emotion": ["joy", "anger", "neutral"]})
    assert task.targets[0].classes == ("anger", "joy", "neutral")
    task = resolve_task("generic", targets=["emotion"], classes={"emotion": ["neutral", "joy", "anger"]},
                        observed={"emotion": ["joy"]})
    assert task.targets[0].classes == ("neutral", "joy", "anger")


def test_task_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown task 'mer2025'"):
        resolve_task("mer2025")
    with pytest.raises(ConfigError, match="data.targets"):
        resolve_task("generic")
    with pytest.raises(ConfigError, match="unknown metric 'f2'"):
        resolve_task("mer2024-semi", metric="f2")
    with pytest.raises(ConfigError, match="data.classes: unknown target"):
        resolve_task("mer2024-semi", classes={"emotion": ["a", "b"]})
