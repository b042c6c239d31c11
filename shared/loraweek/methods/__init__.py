"""Day 3: fine-tuning methods side by side at the same budget.

One concept per module: `registry` (method name -> trainable model, save / reload),
`bottleneck` (the Houlsby adapter peft does not ship), `hft` (half fine-tuning),
`compare` (same-budget runs with a learning-rate sweep and the measured table),
`combine` (peft's `add_weighted_adapter` on two adapters), `decision` (the weighted
decision matrix and its sensitivity check), `dpo` (preference tuning on top of the SFT
adapter, the reference being the same weights with the new adapter switched off).
"""
