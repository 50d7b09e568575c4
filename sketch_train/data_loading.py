"""How many data-loading worker processes to start when the user leaves the choice to us."""

import os

AUTO_WORKERS = -1  # the --dataloader_num_workers value that means "pick from the machine"
MAX_GPU_WORKERS = 8  # beyond this, extra workers only cost memory for 128-448 px images


def auto_num_workers(uses_gpu: bool) -> int:
    """Workers per training process, from the cores this process may use and the processes sharing the node.

    On a GPU the model step runs elsewhere, so every core but the one feeding the GPU decodes images.
    On a CPU the training step itself needs every core, and a worker process preempting one of its threads
    stalls the others at their next synchronisation: on 2 cores, loading pre-resized images in the training
    process ran faster than one worker beside it (README, "Speed"). So one worker per 4 cores, none below 4.
    """
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # set by torchrun and accelerate launch
    cores = max(1, len(os.sched_getaffinity(0)) // processes)
    if uses_gpu:
        return max(1, min(MAX_GPU_WORKERS, cores - 1))
    return cores // 4
