"""The MLflow pyfunc behind every registered version ("models from code": MLflow stores this
file as the model's code, so loading unpickles nothing).

A version holds only its LoRA adapter (safetensors) and, in its `model_config`, which base model
to put it on: `embedded` (the packaged default model, converted on first use) or a local model
folder. `mlflow.pyfunc.load_model("models:/<name>@champion").predict(prompts)` returns one
greedy completion per prompt; prompts are a list of strings or a DataFrame with a `prompt`
column; `params={"max_new_tokens": N}` overrides the length.
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel


class AutoimproveModel(PythonModel):
    def load_context(self, context) -> None:  # noqa: ANN001 - mlflow PythonModelContext
        from autoimprove.consumer import open_backend

        config = context.model_config or {}
        self.backend = open_backend(
            config["base_model"], context.artifacts["adapter"], config.get("dtype", "auto")
        )
        self.system_prompt = config.get("system_prompt")
        self.max_new_tokens = int(config.get("max_new_tokens", 256))

    def predict(self, context, model_input, params=None) -> list[str]:  # noqa: ANN001
        from autoimprove.backends.base import user_turn
        from autoimprove.consumer import prompts_of
        from autoimprove.types import Sampling

        max_new_tokens = int((params or {}).get("max_new_tokens", self.max_new_tokens))
        conversations = [user_turn(p, self.system_prompt) for p in prompts_of(model_input)]
        outputs = self.backend.chat(conversations, Sampling(n=1, max_new_tokens=max_new_tokens))
        return [completions[0].text for completions in outputs]


mlflow.models.set_model(AutoimproveModel())
