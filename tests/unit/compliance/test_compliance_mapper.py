"""pb <-> domain conversion of the compliance service."""
from __future__ import annotations

import pytest
from google.protobuf import json_format, struct_pb2

from libs.validation import GenerationParams
from medai.common.v1 import inference_pb2
from services.compliance import mapper


def test_predict_request_keeps_unset_parameters_unset():
    request = inference_pb2.PredictRequest(
        model_id="m", parameters=inference_pb2.PredictParameters(temperature=0.0, stop=["\n"], normalize=False),
        session_id="s", user_id="u",
    )
    json_format.ParseDict(["a", "b"], request.inputs)
    domain = mapper.predict_input_from_pb(request)
    assert domain.inputs == ["a", "b"]
    assert domain.params == GenerationParams(temperature=0.0, stop=("\n",))
    assert (domain.normalize, domain.truncate, domain.system_prompt) == (False, None, None)
    assert (domain.session_id, domain.user_id) == ("s", "u")
    assert mapper.predict_input_from_pb(inference_pb2.PredictRequest(model_id="m")).inputs is None


def test_generation_parameters_round_trip_to_the_worker_message():
    params = GenerationParams(max_new_tokens=8, temperature=0.7, top_k=0, seed=3, stop=("END",))
    pb = mapper.generation_params_to_pb(params)
    assert not pb.HasField("top_p") and pb.HasField("top_k")
    assert mapper.generation_params_from_pb(pb) == params


def test_outputs_are_a_string_a_list_of_strings_or_a_list_of_vectors():
    assert json_format.MessageToDict(mapper.outputs_to_pb("hi")) == "hi"
    assert json_format.MessageToDict(mapper.outputs_to_pb(["a", "b"])) == ["a", "b"]
    assert json_format.MessageToDict(mapper.outputs_to_pb([[0.5, -1.0], [2.0, 0.0]])) == [[0.5, -1.0], [2.0, 0.0]]


def test_caller_falls_back_to_the_call_request_id():
    caller = mapper.caller_from_pb(inference_pb2.Caller(principal_id="p", permissions=["predict"]), "fallback")
    assert (caller.request_id, caller.principal_id, caller.permissions) == ("fallback", "p", ("predict",))


@pytest.mark.parametrize("vectors", [
    [[0.25, -1.5, 1e300, float("inf"), -0.0]],
    [[float(x) for x in range(384)], [1.0], [2.0, 3.0]],
])
def test_vectors_become_the_same_value_as_built_message_by_message(vectors):
    expected = struct_pb2.Value()
    for vector in vectors:
        expected.list_value.values.add().list_value.values.extend(struct_pb2.Value(number_value=x) for x in vector)
    assert mapper.outputs_to_pb(vectors) == expected
    assert mapper.outputs_to_pb(vectors).SerializeToString() == expected.SerializeToString()


def test_texts_and_mixed_outputs_keep_their_shape():
    assert json_format.MessageToDict(mapper.outputs_to_pb(["a", "b"])) == ["a", "b"]
    assert mapper.outputs_to_pb("a").string_value == "a"
