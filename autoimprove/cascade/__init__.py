"""The self-verification cascade: stages that judge, and the voting that decides.

`voting.py` schedules votes (lazy waves, first-valid) and counts them; `stages/` hold the judges;
`prompts/` hold the judge prompts. A stage only judges; the cascade decides short-circuiting.
"""
