"""The reproduction study: a profile becomes a plan of papermill notebook steps (:mod:`.pipeline`: plan, content
hashes of code not prose, local run), run locally or as SLURM jobs (:mod:`.slurm`), each notebook step calling one
function of :mod:`.tasks`; the kept Jupyter kernel (:mod:`.jupyter_kernel`), the remaining-time estimate
(:mod:`.eta`) and where a study stands (:mod:`.status`). The top layer: only ``__main__`` imports it."""
