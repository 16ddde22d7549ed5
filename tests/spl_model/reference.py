"""An independent, functional transcription of the released SPL generator's forward pass.

Written from the release's order of operations (networks.py / rn.py of github WendongZh/SPL) as
plain tensor arithmetic over a state dict, with no code shared with `spl_model`: the oracle the
numerical-agreement test compares the package against. Configuration is read off the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_forward(sd: dict[str, torch.Tensor], x, mask, masked_512, mask_512):
    def conv(name, t, stride=1, padding=0, dilation=1):
        return F.conv2d(t, sd[f"{name}.weight"], sd.get(f"{name}.bias"), stride, padding, dilation)

    def rn_in(region, m):
        # RN_binarylabel_IN.rn: per-sample, per-channel statistics; empty regions count 1 pixel.
        total = torch.sum(region, dim=[2, 3])
        sr = torch.sum(m, dim=[2, 3])
        sr[sr == 0] = 1
        mu = total / sr
        normed = F.instance_norm(region + (1 - m) * mu[:, :, None, None])
        return normed * torch.sqrt(sr / (region.shape[2] * region.shape[3]))[:, :, None, None]

    def rn_binary(t, label):
        return rn_in(t * label, label) + rn_in(t * (1 - label), 1 - label)

    def rn_b(name, t, m):
        m = F.interpolate(m, size=t.shape[2:], mode="nearest")
        r = rn_binary(t, m)
        p = {
            k: sd[f"{name}.{k}"][None, :, None, None]
            for k in ("foreground_gamma", "foreground_beta", "background_gamma", "background_beta")
        }
        fg = (r * m) * (1 + p["foreground_gamma"]) + p["foreground_beta"]
        bg = (r * (1 - m)) * (1 + p["background_gamma"]) + p["background_beta"]
        return fg + bg

    def rn_l(name, t, threshold=0.8):
        stats = torch.cat([torch.mean(t, 1, keepdim=True), torch.max(t, 1, keepdim=True)[0]], 1)
        sa = torch.sigmoid(F.conv2d(stats, sd[f"{name}.sa.conv1.weight"], None, 1, 3))
        gamma = conv(f"{name}.sa.gamma_conv", sa, padding=3)
        beta = conv(f"{name}.sa.beta_conv", sa, padding=3)
        m = (sa >= threshold).float().expand(t.size())
        return rn_binary(t, m) * (1 + gamma) + beta

    def spade(name, t, seg):
        normed = F.instance_norm(t)
        seg = F.interpolate(seg, size=t.shape[2:], mode="nearest")
        actv = F.relu(conv(f"{name}.mlp_shared.0", seg, padding=1))
        return normed * (1 + conv(f"{name}.mlp_gamma", actv, padding=1)) + conv(
            f"{name}.mlp_beta", actv, padding=1
        )

    def count(prefix):
        return len({k[len(prefix) :].split(".")[0] for k in sd if k.startswith(prefix)})

    x_input = (x * (1 - mask).float()) + mask
    h = F.pad(x_input, (3, 3, 3, 3), mode="reflect")
    h = F.relu(rn_b("encoder_in1", conv("encoder_conv1", h), mask))
    h = F.relu(rn_b("encoder_in2", conv("encoder_conv2", h, stride=2, padding=1), mask))
    h = F.relu(rn_b("encoder_in3", conv("encoder_conv3", h, stride=2, padding=1), mask))

    s = F.pad(torch.cat((masked_512, mask_512), 1), (3, 3, 3, 3), mode="reflect")
    s = F.leaky_relu(conv("encoder_conv1_sm", s), 0.1)
    for i in (2, 3, 4):
        s = F.leaky_relu(conv(f"encoder_conv{i}_sm", s, stride=2, padding=1), 0.1)
    skip = conv("encoder_sm_out", s, padding=1)
    local = []
    for b in range(count("rdbs.")):
        inner = skip
        for j in range(count(f"rdbs.{b}.layers.")):
            grown = F.relu(conv(f"rdbs.{b}.layers.{j}.conv", inner, padding=1))
            inner = torch.cat([inner, grown], 1)
        skip = skip + conv(f"rdbs.{b}.lff", inner)
        local.append(skip)
    s = conv("gff.1", conv("gff.0", torch.cat(local, 1)), padding=1) + s
    for b in range(count("feature_recon.")):
        r = conv(f"feature_recon.{b}.conv_block.1", F.pad(s, (1, 1, 1, 1), mode="reflect"))
        r = conv(f"feature_recon.{b}.conv_block.4", F.pad(F.relu(r), (1, 1, 1, 1), mode="reflect"))
        s = s + r
    layout = s
    prior = conv("feature_mapping", layout)

    for b in range(count("middle.")):
        p = f"middle.{b}.conv_block"
        r = F.relu(spade(f"{p}.0", h, layout))
        r = conv(f"{p}.3", F.pad(r, (2, 2, 2, 2), mode="reflect"), dilation=2)
        r = F.relu(spade(f"{p}.4", r, layout))
        r = conv(f"{p}.7", F.pad(r, (1, 1, 1, 1), mode="reflect"))
        h = r + h

    d = F.pixel_shuffle(conv("decoder.0", h, padding=1), 2)
    d = F.relu(rn_l("decoder.2", d))
    d = F.pixel_shuffle(conv("decoder.4", d, padding=1), 2)
    d = F.relu(rn_l("decoder.6", d))
    d = conv("decoder.9", F.pad(d, (3, 3, 3, 3), mode="reflect"))
    return (torch.tanh(d) + 1) / 2, prior
