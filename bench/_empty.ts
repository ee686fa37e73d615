// An empty script: the baseline for Deno start-up.
