from ade_distill.teacher.parse import parse_output

K = ("drug", "ade")


def test_strict_json_and_empty_list():
    r = parse_output('{"relations": [{"drug": "a", "ade": "b"}]}', K)
    assert r.method == "json" and r.items == ({"drug": "a", "ade": "b"},)
    r = parse_output('{"relations":[]}', K)
    assert r.ok and r.items == ()


def test_code_fence_single_quotes_trailing_comma():
    text = "Here you go:\n```json\n{'relations': [{'drug': 'x', 'ade': \"y's rash\"},]}\n```\nDone."
    r = parse_output(text, K)
    assert r.ok and r.items == ({"drug": "x", "ade": "y's rash"},)


def test_json_inside_prose_and_list_values_expand():
    r = parse_output('Answer: {"relations": [{"drug": "a", "ade": ["b", "c"]}]} hope it helps', K)
    assert r.method == "extracted"
    assert r.items == ({"drug": "a", "ade": "b"}, {"drug": "a", "ade": "c"})


def test_truncated_keeps_complete_items_and_counts_the_rest():
    r = parse_output('{"relations":[{"drug":"a","ade":"b"},{"drug":"c","ade":"d"},{"drug":"e","ad', K)
    assert r.method == "salvaged"
    assert r.items == ({"drug": "a", "ade": "b"}, {"drug": "c", "ade": "d"})
    assert r.dropped_incomplete == 1


def test_runaway_object_without_braces_like_recorded_gpt4():
    text = '{\n "relations": [\n {\n "drug": "carbamazepine",\n "ade": "toxicity",\n \t"drug": "ritonavir",\n' \
           ' "ade": "toxicity",\n \t"drug": "carbamazepine",\n "ade": "toxicity",\n \t"drug": "rito'
    r = parse_output(text, K)
    assert r.items == ({"drug": "carbamazepine", "ade": "toxicity"}, {"drug": "ritonavir", "ade": "toxicity"})
    assert r.dropped_duplicates == 1  # the cut-off "rito... value is not a pair at all


def test_incomplete_and_duplicate_items_counted_keys_case_insensitive_aliases():
    r = parse_output('[{"Drug": "a", "ADE": "b"}, {"drug": "a", "ade": "b"}, {"drug": "z"}, {"DRUG": "q", "ade": " "}]',
                     K, aliases={"DRUG": "drug"})
    assert r.items == ({"drug": "a", "ade": "b"},)
    assert r.dropped_duplicates == 1 and r.dropped_incomplete == 2


def test_empty_and_garbage():
    assert parse_output(None, K).method == "empty"
    assert parse_output("  ", K).method == "empty"
    r = parse_output("I cannot help with that.", K)
    assert r.method == "failed" and not r.ok and r.items == ()


def test_function_call_arguments_and_python_literals():
    r = parse_output('{"relations":[{"drug":"azithromycin","ade":"ototoxicity"}]}', K)
    assert r.items == ({"drug": "azithromycin", "ade": "ototoxicity"},)
    r = parse_output("{'relations': [{'drug': 'a', 'ade': 'b', 'negated': False}]}", K)
    assert r.method == "repaired" and r.items == ({"drug": "a", "ade": "b"},)
