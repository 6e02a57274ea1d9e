"""Preference records, their JSONL format, and loaders of the real data sets."""

from rm_theory.data.loaders import (
    LOADERS,
    load,
    load_gsm8k_solutions,
    load_hh_rlhf,
    load_jsonl,
    load_llmbar,
    load_pandalm,
    load_pku_saferlhf,
    load_safer_instruct,
    load_ultrafeedback,
    randomize_sides,
    split_by_prompt,
    split_hh_transcript,
)
from rm_theory.data.records import (
    HARM_CATEGORIES,
    LoadReport,
    PreferenceRecord,
    PreferenceTable,
    RecordError,
    audit,
    prompt_hash,
    read_jsonl,
    record_from_dict,
    write_jsonl,
)

__all__ = [
    "HARM_CATEGORIES", "LOADERS", "LoadReport", "PreferenceRecord", "PreferenceTable",
    "RecordError", "audit", "load", "load_gsm8k_solutions", "load_hh_rlhf", "load_jsonl",
    "load_llmbar", "load_pandalm", "load_pku_saferlhf", "load_safer_instruct",
    "load_ultrafeedback", "prompt_hash", "randomize_sides", "read_jsonl", "record_from_dict",
    "split_by_prompt", "split_hh_transcript", "write_jsonl",
]
