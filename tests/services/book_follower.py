"""A consumer with one delta in-state, `book`: the target of the hostile out side tests."""

state_models = {"in": {"book": {
    "state_type": "delta_update_in",
    "optional_arguments": {"levels": {str: int}, "notes": {str: str}, "note": str},
}}}
