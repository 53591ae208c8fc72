"""Stand-in for the official SANM Train_cifar.py (tests/benchmarks/official_standin/README.md): the functions
benchmarks/parity.py calls, written here from docs/baselines.md 9, with the official interface."""
import math
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.mixture import GaussianMixture

from resnetc2d import *  # noqa: F401,F403 - SupCEResNet, as the official script takes it
import dataloader_cifar as dataloader  # not shipped: the harness must leave the data loaders out

raise SystemExit("the module level of an official script trains; the harness must not run it")
num_classes = 10


def attention_erase_map(images, outputs, gmmweight, target_mask):
    """Peak- and trough-masked copies of `images` and the NLR-softened `target_mask` (changed in place)."""
    height, width = images.shape[2], images.shape[3]
    energy = (outputs ** 2).sum(1, keepdim=True)
    upsampled = F.interpolate(energy, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    peak_img, trough_img = images.clone(), images.clone()
    classes = target_mask.shape[1]
    for i in range(images.shape[0]):
        level = upsampled[i].flatten()
        level = np.floor(255 * ((level - level.min()) / (level.max() - level.min() + 1e-12)).numpy())
        peak, trough = divmod(int(np.argmax(level)), width), divmod(int(np.argmin(level)), width)
        ratio = random.uniform(0.02, 0.07) + 0.03 * (1 - gmmweight[i])
        top = int(torch.argmax(target_mask[i]))
        spread = torch.full((classes,), float(ratio) / (classes - 1))
        spread[top] = -float(ratio)
        target_mask[i] += spread.cuda()
        aspect = random.uniform(0.8, 1 / 0.8)
        area = ratio * height * width * 0.5
        rows, cols = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        for img, (r, c) in ((peak_img, peak), (trough_img, trough)):
            r, c = min(r, height - rows), min(c, width - cols)
            for channel in range(images.shape[1]):
                img[i, channel, r:r + rows, c:c + cols] = random.uniform(0, 1)
    return peak_img, trough_img, target_mask


def train(epoch, net, net2, optimizer, labeled_trainloader, unlabeled_trainloader):
    net.train()
    net2.eval()
    unlabeled = iter(unlabeled_trainloader)
    num_iter = len(labeled_trainloader.dataset) // args.batch_size + 1
    for batch_idx, (inputs_xp, inputs_xp2, inputs_xs1, inputs_xs2, inputs_x, inputs_x2, labels_x, _,
                    w_x) in enumerate(labeled_trainloader):
        inputs_up, inputs_up2, inputs_us1, inputs_us2, inputs_u, inputs_u2, w_u = next(unlabeled)
        batch_size = inputs_x.size(0)
        onehot = F.one_hot(labels_x, args.num_class).float().cuda()
        w_x, w_u = w_x.view(-1, 1).float().cuda(), w_u.view(-1, 1).float().cuda()
        with torch.no_grad():
            map_u, _, out_u1 = net(inputs_u.cuda(), return_map=True)
            guesses = [out_u1, net(inputs_u2)[2], net2(inputs_u)[2], net2(inputs_u2)[2]]
            guess = sum(torch.softmax(g, dim=1) for g in guesses) / 4
            targets_u = guess ** (1 / args.T) / (guess ** (1 / args.T)).sum(dim=1, keepdim=True)
            map_x, _, out_x1 = net(inputs_x, return_map=True)
            refined = (torch.softmax(out_x1, dim=1) + torch.softmax(net(inputs_x2)[2], dim=1)) / 2
            refined = w_x * onehot + (1 - w_x) * refined
            targets_x = refined ** (1 / args.T) / (refined ** (1 / args.T)).sum(dim=1, keepdim=True)
        inputs_erase = torch.cat([inputs_x, inputs_u])
        erase_imgx_max, erase_imgx_min, softened = attention_erase_map(
            inputs_erase, torch.cat([map_x, map_u]), torch.cat([w_x, w_u]), torch.cat([targets_x, targets_u]))
        targets_x_mask, targets_u_mask = softened[:batch_size], softened[batch_size:]
        reconout = net(torch.cat([erase_imgx_max, erase_imgx_min]), recon=True)
        half = inputs_erase.shape[0]
        Lrecon = F.mse_loss(reconout[:half], inputs_erase) + F.mse_loss(reconout[half:], inputs_erase)
        l = np.random.beta(args.alpha, args.alpha)
        l = max(l, 1 - l)
        rows = [inputs_xp, inputs_xp2, inputs_xs1, inputs_xs2, erase_imgx_max[:batch_size], erase_imgx_min[:batch_size],
                inputs_up, inputs_up2, inputs_us1, inputs_us2, erase_imgx_max[batch_size:], erase_imgx_min[batch_size:]]
        all_inputs = torch.cat(rows)
        all_targets = torch.cat([targets_x] * 4 + [targets_x_mask] * 2 + [targets_u] * 4 + [targets_u_mask] * 2)
        idx = torch.randperm(all_inputs.size(0))
        mixed_input = l * all_inputs + (1 - l) * all_inputs[idx]
        mixed_target = l * all_targets + (1 - l) * all_targets[idx]
        logits = net(mixed_input)[2]
        Lx, Lu, lamb = criterion(logits[:batch_size * 6], mixed_target[:batch_size * 6], logits[batch_size * 6:],
                                 mixed_target[batch_size * 6:], epoch + batch_idx / num_iter, warm_up)
        prior = torch.full((args.num_class,), 1 / args.num_class).cuda()
        penalty = (prior * torch.log(prior / torch.softmax(logits, dim=1).mean(0))).sum()
        loss = Lx + lamb * Lu + penalty + Lrecon * 0.02
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def eval_train(model, all_loss):
    model.eval()
    losses = torch.zeros(50000)
    with torch.no_grad():
        for inputs, targets, index in eval_loader:
            losses[index] = CE(model(inputs.cuda())[2], targets.cuda())
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


def create_model_noself(num_classes=num_classes):  # a default read from the module level: left out by the harness
    raise AssertionError("not called")
