"""The worker of ``test_distributed.py``'s loader test, in a module of its own: each spawned process
imports the module its function comes from, and this one needs only torch and mirformer's loaders
(the test module also imports every kind and the helpers: about a second more a process)."""


def loader_worker(rank: int, port: int, queue) -> None:
    """One of two gloo processes: which items its training and evaluation loaders give it."""
    import torch.distributed as dist

    from mirformer.training.loaders import make_loader

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        data = list(range(7))
        train = [int(i) for batch in make_loader(data, 4, train=True, seed=0) for i in batch]
        evaluation = [int(i) for batch in make_loader(data, 4, train=False) for i in batch]
        queue.put((rank, train, evaluation))
    finally:
        dist.destroy_process_group()
