"""Stand-in for the official DivideMix Train_cifar.py (tests/benchmarks/official_standin/README.md): the functions
benchmarks/parity.py calls, written here from docs/baselines.md 4, with the official interface."""
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.mixture import GaussianMixture

from PreResNet import *  # noqa: F401,F403 - ResNet18, as the official script takes it
import dataloader_cifar as dataloader  # not shipped: the harness must leave the data loaders out

raise SystemExit("the module level of an official script trains; the harness must not run it")


def train(epoch, net, net2, optimizer, labeled_trainloader, unlabeled_trainloader):
    net.train()
    net2.eval()
    unlabeled = iter(unlabeled_trainloader)
    num_iter = len(labeled_trainloader.dataset) // args.batch_size + 1
    for batch_idx, (inputs_x, inputs_x2, labels_x, w_x) in enumerate(labeled_trainloader):
        inputs_u, inputs_u2 = unlabeled.next()  # Python 2's iterator method, as the official script calls it
        batch_size = inputs_x.size(0)
        onehot = F.one_hot(labels_x, args.num_class).float().cuda()
        w_x = w_x.view(-1, 1).float().cuda()
        with torch.no_grad():
            guess = sum(torch.softmax(n(v.cuda()), dim=1) for n in (net, net2) for v in (inputs_u, inputs_u2)) / 4
            targets_u = guess ** (1 / args.T) / (guess ** (1 / args.T)).sum(dim=1, keepdim=True)
            refined = (torch.softmax(net(inputs_x), dim=1) + torch.softmax(net(inputs_x2), dim=1)) / 2
            refined = w_x * onehot + (1 - w_x) * refined
            targets_x = refined ** (1 / args.T) / (refined ** (1 / args.T)).sum(dim=1, keepdim=True)
        l = np.random.beta(args.alpha, args.alpha)
        l = max(l, 1 - l)
        all_inputs = torch.cat([inputs_x, inputs_x2, inputs_u, inputs_u2])
        all_targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
        idx = torch.randperm(all_inputs.size(0))
        mixed_input = l * all_inputs + (1 - l) * all_inputs[idx]
        mixed_target = l * all_targets + (1 - l) * all_targets[idx]
        logits = net(mixed_input)
        Lx, Lu, lamb = criterion(logits[:batch_size * 2], mixed_target[:batch_size * 2], logits[batch_size * 2:],
                                 mixed_target[batch_size * 2:], epoch + batch_idx / num_iter, warm_up)
        prior = torch.full((args.num_class,), 1 / args.num_class).cuda()
        penalty = (prior * torch.log(prior / torch.softmax(logits, dim=1).mean(0))).sum()
        loss = Lx + lamb * Lu + penalty
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def eval_train(model, all_loss):
    model.eval()
    losses = torch.zeros(50000)
    with torch.no_grad():
        for inputs, targets, index in eval_loader:
            losses[index] = CE(model(inputs.cuda()), targets.cuda())
    losses = (losses - losses.min()) / (losses.max() - losses.min())
    all_loss.append(losses)
    fitted = torch.stack(all_loss)[-5:].mean(0) if args.r == 0.9 else losses
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4)
    gmm.fit(fitted.reshape(-1, 1))
    prob = gmm.predict_proba(fitted.reshape(-1, 1))[:, gmm.means_.argmin()]
    return prob, all_loss


def linear_rampup(current, warm_up, rampup_length=16):
    return args.lambda_u * float(np.clip((current - warm_up) / rampup_length, 0.0, 1.0))


class SemiLoss:
    def __call__(self, outputs_x, targets_x, outputs_u, targets_u, epoch, warm_up):
        Lx = -(F.log_softmax(outputs_x, dim=1) * targets_x).sum(dim=1).mean()
        Lu = ((torch.softmax(outputs_u, dim=1) - targets_u) ** 2).mean()
        return Lx, Lu, linear_rampup(epoch, warm_up)
