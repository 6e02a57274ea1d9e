"""The README's Quickstart and CI run the same test command."""

import re


def test_ci_runs_the_readme_test_command(project_root):
    readme = (project_root / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme.split("## Quickstart")[1].split("\n## ")[0], re.S)
    assert len(blocks) == 2, "the Quickstart has exactly two commands"
    main_job, tests = blocks
    assert "experiments.reproduce" in main_job
    ci = (project_root / ".ci" / "run").read_text()
    steps = [s.strip() for s in tests.split("&&")]
    assert steps[0].startswith("python3 -m venv .venv")
    for step in steps[1:]:
        pip = re.sub(r"^\.venv/bin/pip install ", ".venv/bin/pip install --quiet ", step)
        assert step in ci or pip in ci, f"CI does not run `{step}`"
