"""What a suite sends, computed without a model: prompt sets (prompts.py), Jinja2 templates (render.py), a model's
own chat template (chat_format.py), token counts (tokens.py), and the share a prefix cache could serve
(cache_share.py).

May import: safety, config.
"""
