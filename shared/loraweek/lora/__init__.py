"""Day 1's LoRA and QLoRA from the inside, one concept per file:

- `layer`: the LoRA forward pass written by hand (checked against peft), parameter counts;
- `quantization`: NF4 / int8 quantization written by hand (checked against bitsandbytes);
- `memory_estimate`: how much GPU memory a fine-tuning run needs, from its parts.
"""
