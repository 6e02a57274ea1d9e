"""The synthetic preference world: response spaces with a gold reward, chain and tree data sets, labels, AI
labellers (`judges`: noise, bias, confidence, calibration), a gold vector of several dimensions with its
annotators and label costs (`multidim`), query pairs, the prefix trie of a set of responses (the IBN's
and the exact learner's), the preference record and its JSONL format (of several dimensions:
`multirecords`), and the trainer's input arrays."""

from rm_theory.world import judges, multidim, multirecords
from rm_theory.world.inputs import PrefData
from rm_theory.world.judges import Judge, Verdicts, calibrate_judge
from rm_theory.world.labels import LabelConfig, Labels, gold_cost, label_comparisons, labelled_data
from rm_theory.world.multidim import MultiDimWorld
from rm_theory.world.multirecords import AttributeRating, MultiPreference
from rm_theory.world.queries import QuerySpec, sample_query_sets
from rm_theory.world.records import (
    HARM_CATEGORIES,
    EmptyDataError,
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
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, Responses, ResponseSpace, TreeShape
from rm_theory.world.synthetic import from_records, input_spec, to_pref_data, to_records
from rm_theory.world.topology import (
    TOPOLOGIES,
    Comparisons,
    TreeSampling,
    annotation_tokens,
    make_dataset,
    sample_chain,
    sample_tree_data,
)
from rm_theory.world.trie import PrefixTrie, prefix_trie

__all__ = [
    "HARM_CATEGORIES",
    "TOPOLOGIES",
    "AttributeRating",
    "Comparisons",
    "EmptyDataError",
    "Judge",
    "LabelConfig",
    "Labels",
    "LoadReport",
    "MetricSpace",
    "MultiDimWorld",
    "MultiPreference",
    "PrefData",
    "PreferenceRecord",
    "PreferenceTable",
    "PrefixTreeSpace",
    "PrefixTrie",
    "QuerySpec",
    "RecordError",
    "ResponseSpace",
    "Responses",
    "TreeSampling",
    "TreeShape",
    "Verdicts",
    "annotation_tokens",
    "audit",
    "calibrate_judge",
    "from_records",
    "gold_cost",
    "input_spec",
    "judges",
    "label_comparisons",
    "labelled_data",
    "make_dataset",
    "multidim",
    "multirecords",
    "prefix_trie",
    "prompt_hash",
    "read_jsonl",
    "record_from_dict",
    "sample_chain",
    "sample_query_sets",
    "sample_tree_data",
    "to_pref_data",
    "to_records",
    "write_jsonl",
]
