from pipelines.extract import extract_entities, merge_model_entities, normalize_node

HOSTS = [f"node-{i:02d}" for i in range(1, 9)]


def test_case_study_alert_has_no_node_and_performance_priors() -> None:
    e = extract_entities("Job llama-7b-pretrain: step time up 3x in the last 20 minutes", HOSTS)
    assert e.hosts == [] and e.jobs == ["llama-7b-pretrain"]
    assert next(iter(e.hypotheses)) == "gpu_clock_throttle"


def test_hosts_ports_gpus_xids_hcas_and_ignore() -> None:
    text = ("job died on 10.0.3.17 (ssh on 2222), ignore the old 10.0.9.9 box. "
            "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus on node 5 GPU 3; mlx5_1 down")
    e = extract_entities(text, HOSTS)
    assert e.hosts == ["10.0.3.17", "node-05"]
    assert e.ignored_hosts == ["10.0.9.9"]
    assert e.ssh_ports == [2222] and e.gpus == [3] and e.xids == [79] and e.hcas == ["mlx5_1"]
    assert next(iter(e.hypotheses)) == "gpu_fallen_off_bus"


def test_other_languages_and_huge_input_do_not_crash() -> None:
    e = extract_entities("训练任务在 node-03 上变慢了，GPU 2 温度很高 (température élevée)", HOSTS)
    assert e.hosts == ["node-03"] and e.gpus == [2]
    big = ("garbage line\n" * 400_000) + "node-07 no space left on device"
    assert extract_entities(big, HOSTS).nodes == ["node-07"]


def test_model_entities_must_be_grounded() -> None:
    text = "GPU 3 on node-05 slow"
    e = extract_entities(text, HOSTS)
    notes = merge_model_entities(e, {"hosts": ["10.10.10.10", "node-05"], "gpus": [3, 7], "keywords": ["slow"]}, text, HOSTS)
    assert "10.10.10.10" not in e.hosts and 7 not in e.gpus
    assert any("10.10.10.10" in n for n in notes)


def test_normalize_node() -> None:
    assert normalize_node("node5", HOSTS) == "node-05"
    assert normalize_node("NODE-05", HOSTS) == "node-05"
    assert normalize_node("rack9", HOSTS) is None
