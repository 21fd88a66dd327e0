"""slamp.models / slamp.nn: SVG, AppearanceOnly, SLAMP-Baseline and SLAMP (notebooks 03_slamp_baseline, 04_slamp)."""
import pytest
import torch

from slamp.checkpoint import IncompatibleWeightsError, load_weights
from slamp.models import (
    PRESETS,
    SLAMP,
    SVG,
    AppearanceOnly,
    ModelConfig,
    SLAMPBaseline,
    check_video,
    repeat_rows,
    sample_futures,
)
from slamp.nn import (
    SKIP_RULES,
    ConvDecoder,
    ConvEncoder,
    ConvLSTM,
    DCGANDecoder,
    DCGANEncoder,
    GaussianLSTM,
    MaskNet,
    SpatialEncoder,
    VGGDecoder,
    VGGEncoder,
    decoder_skips,
    running_mean,
    step_skips,
)
from slamp.toy import fit_one_batch, moving_squares


MODELS = [SVG, AppearanceOnly, SLAMPBaseline, SLAMP]

# Parameter counts of the paper's presets (g=128, LSTMs 256, z = 20 / 50 / 64): if a change to the
# architecture moves one of these, it is no longer the paper's model. SLAMP's equal the public
# code's (kaanakan/slamp, instantiated: 25,366,628 / 45,726,932 / 45,769,798): no bias before a
# BatchNorm nor in the squeeze-excitation layers. (SVG's own repository keeps its conv biases before
# BatchNorm, 12,626,897 at these MNIST sizes and 12,614,057 at its own, z = 10: slamp folds them into
# BatchNorm's running means, tests/test_svg_release.py.) AppearanceOnly has SVG's modules.
PARAMETERS = {
    ("SVG", "mnist"): 12_624_849, ("SLAMPBaseline", "mnist"): 19_298_324, ("SLAMP", "mnist"): 25_366_628,
    ("SVG", "kth"): 22_805_961, ("SLAMPBaseline", "kth"): 34_739_212, ("SLAMP", "kth"): 45_726_932,
    ("SVG", "bair"): 22_826_243, ("SLAMPBaseline", "bair"): 34_761_798, ("SLAMP", "bair"): 45_769_798,
    ("SVG", "tiny"): 793_089, ("SLAMPBaseline", "tiny"): 1_211_732, ("SLAMP", "tiny"): 1_594_484,
    ("SVG", "kitti"): 26_673_475, ("SLAMPBaseline", "kitti"): 31_735_174, ("SLAMP", "kitti"): 50_221_382,
    ("SVG", "cityscapes"): 26_673_475, ("SLAMPBaseline", "cityscapes"): 31_735_174, ("SLAMP", "cityscapes"): 50_221_382,
    ("SVG", "cpu"): 1_354_577, ("SLAMPBaseline", "cpu"): 1_833_260, ("SLAMP", "cpu"): 2_711_964,
}
PARAMETERS.update({("AppearanceOnly", preset): count for (name, preset), count in list(PARAMETERS.items())
                   if name == "SVG"})


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("preset", ["mnist", "kth", "bair", "tiny", "kitti", "cityscapes", "cpu"])
def test_parameter_counts_of_the_presets(cls, preset):
    assert cls.from_preset(preset).num_parameters() == PARAMETERS[cls.__name__, preset]


# The public code's KITTI and Cityscapes modules (models/kitti_models.py, cityscapes_models.py,
# conv_lstms.py, instantiated with g 64, z 32, ConvLSTMs 256) and their parameter counts, each
# the slamp submodule whose state dict holds the same tensors in the same order.
PUBLIC_CONV_MODULES = {
    "img_encoder": ("image_encoder", 3_536_064), "pixel_encoder": ("encoder", 1_892_352),
    "motion_encoder": ("motion.encoder.encoder", 2_187_264),
    "posterior_app": ("appearance.posterior", 3_245_376), "prior_app": ("appearance.prior", 3_245_376),
    "static_frame_predictor": ("appearance.predictor", 9_808_192),
    "posterior_motion": ("motion.latent.posterior", 3_245_376), "prior_motion": ("motion.latent.prior", 3_245_376),
    "dynamic_frame_predictor": ("motion.latent.predictor", 9_808_192),
    "pixel_decoder": ("pixel_decoder", 4_946_115), "flow_decoder": ("flow_decoder", 4_945_538),
    "mask_decoder": ("mask_net", 116_161),
}


@pytest.mark.parametrize("preset", ["kitti", "cityscapes"])
def test_kitti_and_cityscapes_slamp_are_the_public_codes_modules(preset):
    model = SLAMP.from_preset(preset)
    assert model.num_parameters() == 50_221_382 == sum(n for _, n in PUBLIC_CONV_MODULES.values())
    for public, (ours, count) in PUBLIC_CONV_MODULES.items():
        assert sum(p.numel() for p in model.get_submodule(ours).parameters()) == count, public
    assert sum(len(model.get_submodule(ours).state_dict()) for ours, _ in PUBLIC_CONV_MODULES.values()) == \
        len(model.state_dict())  # nothing else holds weights
    # The public Gaussian ConvLSTMs hold an embedding their forward never calls: kept, frozen.
    prior = model.appearance.prior
    assert not prior.embedded and not any(p.requires_grad for p in prior.embed.parameters())


def test_presets_hold_the_papers_sizes():
    for name, backbone, channels, z_dim, beta in [("mnist", "dcgan", 1, 20, 1e-4), ("kth", "vgg", 1, 50, 1e-6),
                                                   ("bair", "vgg", 3, 64, 1e-4)]:
        c = ModelConfig.preset(name)
        assert (c.backbone, c.channels, c.z_dim, c.beta) == (backbone, channels, z_dim, beta)
        assert (c.g_dim, c.rnn_size, c.prior_layers, c.posterior_layers, c.predictor_layers) == (128, 256, 1, 1, 2)
        assert (c.width, c.mask_width) == (64, 64)
    for name, size, latent in [("kitti", (92, 310), (32, 4, 4)), ("cityscapes", (128, 256), (32, 4, 8))]:
        c = ModelConfig.preset(name)
        assert c.image_size == size and c.backbone == "conv" and (c.g_dim, c.z_dim, c.rnn_size) == (64, 32, 256)
        assert SLAMP.from_preset(name, width=4, mask_width=4, rnn_size=8).latent_shape == latent
    assert set(PRESETS) >= {"mnist", "kth", "bair", "kitti", "cityscapes", "tiny"}


@pytest.mark.parametrize("Encoder, Decoder, skip_sizes", [(DCGANEncoder, DCGANDecoder, [32, 16, 8, 4]),
                                                         (VGGEncoder, VGGDecoder, [64, 32, 16, 8])])
def test_backbones_map_frames_to_features_and_back(Encoder, Decoder, skip_sizes):
    h, skips = Encoder(32, channels=3, width=8)(torch.rand(2, 3, 64, 64))
    assert h.shape == (2, 32) and h.abs().max() <= 1
    assert [s.shape[-1] for s in skips] == skip_sizes
    image = Decoder(32, channels=3, width=8)(h, skips)
    assert image.shape == (2, 3, 64, 64) and image.min() >= 0 and image.max() <= 1
    flow = Decoder(32, channels=2, width=8, output=None)(h, skips)
    assert flow.shape == (2, 2, 64, 64)


def test_gaussian_lstm_over_a_sequence_equals_step_by_step():
    lstm = GaussianLSTM(12, 5, hidden=16, layers=2)
    x = torch.randn(3, 6, 12)
    mu, logvar, _ = lstm(x)
    state, steps = None, []
    for t in range(6):
        m, lv, state = lstm(x[:, t:t + 1], state)
        steps.append(torch.cat([m, lv], -1))
    assert torch.allclose(torch.cat([mu, logvar], -1), torch.cat(steps, 1), atol=1e-6)


KITTI_LEVELS = ModelConfig.preset("kitti").conv_levels


@pytest.mark.parametrize("size, levels, latent", [((92, 310), KITTI_LEVELS, (4, 4)), ((92, 310), None, (3, 10)),
                                                  ((128, 256), None, (4, 8)), ((64, 64), None, (2, 2))])
def test_conv_backbone_keeps_a_feature_map_and_round_trips_any_even_size(size, levels, latent):
    maps, skips = ConvEncoder(32, channels=3, width=4, levels=levels)(torch.rand(2, 3, *size))
    assert maps.shape == (2, 32, *latent) and skips[-1].shape[-2:] == latent
    if levels:  # the public KITTI encoder's pooled sizes
        assert [tuple(s.shape[-2:]) for s in skips] == [level[1:] for level in levels]
    h, no_skips = SpatialEncoder(16, channels=32, width=4)(maps)
    assert h.shape == (2, 16, *latent) and no_skips == []
    image = ConvDecoder(16, channels=3, width=4, size=size)(h, skips)
    assert image.shape == (2, 3, *size) and image.min() >= 0 and image.max() <= 1
    assert ConvDecoder(16, channels=2, width=4, output=None, size=size)(h, skips).shape == (2, 2, *size)


def test_conv_lstm_over_a_sequence_equals_step_by_step_and_keeps_the_map():
    lstm = ConvLSTM(3, 8, layers=2)
    x = torch.randn(2, 5, 3, 4, 6)
    out, (h, c) = lstm(x)
    assert out.shape == (2, 5, 8, 4, 6) and h.shape == c.shape == (2, 2, 8, 4, 6)
    state, steps = None, []
    for t in range(5):
        o, state = lstm(x[:, t:t + 1], state)
        steps.append(o)
    assert torch.allclose(out, torch.cat(steps, 1), atol=1e-6)
    prior = GaussianLSTM(3, 4, hidden=8, layers=1, spatial=True)
    mu, logvar, _ = prior(x)
    assert mu.shape == logvar.shape == (2, 5, 4, 4, 6)
    with torch.no_grad():  # as in the public code, the embedding is not on the path: changing it changes nothing
        prior.embed.weight.add_(1.0)
    assert torch.equal(prior(x)[0], mu)


def test_kitti_model_predicts_full_size_frames():
    model = SLAMP.from_preset("kitti", width=4, mask_width=4, g_dim=8, z_dim=2, rnn_size=8)
    total, terms, prediction = model.loss(torch.rand(1, 3, 3, 92, 310), n_past=1)
    assert prediction.x_hat.shape == (1, 2, 3, 92, 310) and prediction.flow.shape == (1, 2, 2, 92, 310)
    assert torch.isfinite(total) and set(terms) == {"x_hat", "x_p", "x_f", "kl_appearance", "kl_motion"}


def test_mask_net_gives_one_channel_in_unit_interval():
    mask = MaskNet(channels=3, width=16)(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    assert mask.shape == (2, 1, 64, 64) and mask.min() > 0 and mask.max() < 1


def test_running_mean_of_skips():
    skips = torch.randn(2, 5, 3, 4, 4)
    means = running_mean(skips)
    for t in range(5):
        assert torch.allclose(means[:, t], skips[:, :t + 1].mean(1), atol=1e-6)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_loss_terms_and_prediction_shapes(cls):
    model = cls.from_preset("tiny")
    total, terms, prediction = model.loss(torch.rand(2, 5, 1, 64, 64), n_past=2)
    expected = {"x_hat", "kl_appearance"}
    if cls.motion_head:
        expected |= {"x_p", "x_f"}
        assert prediction.flow.shape == (2, 4, 2, 64, 64) and prediction.mask.shape == (2, 4, 1, 64, 64)
    if cls is SLAMP:
        expected |= {"kl_motion"}
    assert set(terms) == expected
    assert prediction.x_hat.shape == (2, 4, 1, 64, 64)
    l2 = sum(v for k, v in terms.items() if not k.startswith("kl"))
    kl = sum(v for k, v in terms.items() if k.startswith("kl"))
    assert torch.allclose(total, l2 + model.config.beta * kl)
    assert all(torch.isfinite(v) for v in terms.values()) and all(terms[k] >= 0 for k in terms if k.startswith("kl"))


def test_svg_prediction_is_its_appearance_and_blend_follows_the_mask():
    svg = SVG.from_preset("tiny")(torch.rand(2, 4, 1, 64, 64))
    assert svg.x_f is None and torch.equal(svg.x_hat, svg.x_p)
    out = SLAMP.from_preset("tiny")(torch.rand(2, 4, 1, 64, 64))
    assert torch.allclose(out.x_hat, out.mask * out.x_p + (1 - out.mask) * out.x_f)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("backbone", ["dcgan", "vgg", "conv"])
def test_batched_and_per_step_paths_give_the_same_loss(cls, backbone):
    model = cls.from_preset("tiny", backbone=backbone, width=8).eval()
    video = torch.rand(2, 6, 1, 64, 64)
    torch.manual_seed(3)
    batched, batched_terms, batched_prediction = model.loss(video, n_past=3)
    torch.manual_seed(3)
    stepwise, stepwise_terms, stepwise_prediction = model.loss(video, n_past=3, per_step=True)
    assert torch.allclose(batched, stepwise, rtol=1e-5, atol=1e-6)
    for name in batched_terms:
        assert torch.allclose(batched_terms[name], stepwise_terms[name], rtol=1e-4, atol=1e-6), name
    assert torch.allclose(batched_prediction.x_hat, stepwise_prediction.x_hat, atol=1e-5)
    for stream, z in batched_prediction.latents.items():
        assert z.shape[:2] == (2, 5) and torch.allclose(z, stepwise_prediction.latents[stream], atol=1e-5)


def test_same_seed_same_loss_and_gradients_reach_every_module():
    model = SLAMP.from_preset("tiny")
    video = torch.rand(2, 4, 1, 64, 64)
    torch.manual_seed(0)
    first, _, _ = model.loss(video)
    torch.manual_seed(0)
    second, _, _ = model.loss(video)
    assert torch.equal(first, second)
    second.backward()
    for name in ["encoder", "pixel_decoder", "flow_decoder", "mask_net", "motion.encoder", "appearance.posterior",
                 "appearance.prior", "motion.latent.posterior", "motion.latent.prior", "motion.latent.predictor"]:
        grads = [p.grad for p in model.get_submodule(name).parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, name


def test_motion_prior_reads_zero_motion_then_the_motion_history():
    model = SLAMP.from_preset("tiny").eval()
    video = torch.rand(2, 5, 1, 64, 64)
    seen = []
    model.motion.latent.prior.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    with torch.no_grad():
        model.loss(video, per_step=True)
        for t in range(1, 5):
            expected = model.motion.encoder(video[:, max(t - 2, 0)], video[:, t - 1])
            assert torch.allclose(seen[t - 1][:, 0], expected, atol=1e-5)


def test_scheduled_sampling_feeds_predictions_back():
    model = SLAMPBaseline.from_preset("tiny").eval()
    video = torch.rand(2, 6, 1, 64, 64)
    torch.manual_seed(0)
    forced = model(video, n_past=2, per_step=True)
    torch.manual_seed(0)
    free = model(video, n_past=2, teacher_forcing=0.0)
    # Steps 1..2 read true frames either way; from step 3 on the inputs differ.
    assert torch.allclose(forced.x_hat[:, :2], free.x_hat[:, :2], atol=1e-6)
    assert not torch.allclose(forced.x_hat[:, 2:], free.x_hat[:, 2:], atol=1e-4)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_generate_samples_many_futures_in_one_batch(cls):
    model = cls.from_preset("tiny").eval()
    past = torch.rand(3, 2, 1, 64, 64)
    torch.manual_seed(0)
    futures = model.generate(past, n_future=4, num_samples=5)
    assert futures.x_hat.shape == (3, 5, 4, 1, 64, 64) and not futures.x_hat.requires_grad
    assert futures.x_hat.std(dim=1).mean() > 0  # samples differ
    torch.manual_seed(0)
    assert torch.equal(model.generate(past, n_future=4, num_samples=5).x_hat, futures.x_hat)
    if cls.motion_head:
        assert futures.flow.shape == (3, 5, 4, 2, 64, 64)
    streams = ["appearance", "motion"] if cls is SLAMP else ["appearance"]
    assert sorted(futures.latents) == sorted(streams)
    assert all(futures.latents[s].shape == (3, 5, 4, 8) for s in streams)  # tiny: z = 8


def test_generate_with_given_noise_redraws_only_the_stream_whose_noise_changes():
    model = SLAMP.from_preset("tiny").eval()
    past = torch.rand(1, 3, 1, 64, 64)
    noise = {s: torch.randn(2, 2 + 4, 8) for s in ("appearance", "motion")}  # 2 samples, 2 + 4 steps, z = 8
    first = model.generate(past, n_future=4, num_samples=2, noise=noise)
    assert torch.equal(model.generate(past, n_future=4, num_samples=2, noise=noise).x_hat, first.x_hat)
    redrawn = model.generate(past, n_future=4, num_samples=2, noise={**noise, "appearance": torch.randn(2, 6, 8)})
    # The first future step's prior reads only the past, so the kept stream's z is unchanged there.
    assert torch.equal(redrawn.latents["motion"][:, :, 0], first.latents["motion"][:, :, 0])
    assert not torch.allclose(redrawn.latents["appearance"][:, :, 0], first.latents["appearance"][:, :, 0])
    with pytest.raises(ValueError, match=r"noise must hold \['appearance', 'motion'\], each of shape \(2, 6, 8\)"):
        model.generate(past, n_future=4, num_samples=2, noise={"appearance": noise["appearance"]})


def test_repeat_rows_is_repeat_interleave_in_any_layout_and_nesting():
    x = torch.rand(3, 4, 5, 6).to(memory_format=torch.channels_last)
    assert torch.equal(repeat_rows(x, 4), x.repeat_interleave(4, 0))
    nested = repeat_rows((x[:, 0], [x, x[:2]]), 2)
    assert torch.equal(nested[0], x[:, 0].repeat_interleave(2, 0)) and torch.equal(nested[1][1], x[:2].repeat_interleave(2, 0))
    assert torch.equal(repeat_rows(x, 1), x)


def test_check_video_checks_values_eagerly_and_only_shapes_while_compiling(monkeypatch):
    config = ModelConfig.preset("tiny")
    with pytest.raises(ValueError, match="must be in"):
        check_video(config, torch.full((1, 2, 1, 64, 64), 255.0))
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # as while torch.compile traces
    check_video(config, torch.full((1, 2, 1, 64, 64), 255.0))  # no value read back: no graph break
    with pytest.raises(ValueError, match="must have 1 channel"):
        check_video(config, torch.rand(1, 2, 3, 64, 64))


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_sampling_reads_no_value_back_to_the_host(cls):
    # On the meta device a tensor has no values: reading one (item, bool, a branch on data) fails.
    # A rollout that runs there can be recorded as a CUDA graph (benchmarks/gpu.py) or compiled
    # without graph breaks.
    from slamp.kernels import fast_sampler
    sampler = fast_sampler(cls.from_preset("tiny").eval(), "meta").to("meta")
    past = torch.rand(2, 3, 1, 64, 64, device="meta")
    noise = {s: torch.randn(2 * 4, 2 + 3, 8, device="meta") for s in sampler.streams}
    with torch.inference_mode():
        assert sample_futures(sampler, past, 3, 4, noise).x_hat.shape == (2, 4, 3, 1, 64, 64)
    with pytest.raises((RuntimeError, NotImplementedError)):
        bool(past.sum() > 0)  # what the test would catch


def test_generate_from_one_frame():
    futures = SLAMP.from_preset("tiny").eval().generate(torch.rand(2, 1, 1, 64, 64), n_future=3)
    assert futures.x_hat.shape == (2, 1, 3, 1, 64, 64)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_loss_falls_when_fitting_one_batch(cls):
    torch.manual_seed(0)
    history = fit_one_batch(cls.from_preset("tiny"), moving_squares(batch=4, length=6), steps=30)
    assert history[-1]["total"] < 0.5 * history[0]["total"]


@pytest.mark.parametrize("call, message", [
    (lambda m: m.loss(torch.rand(6, 1, 64, 64)), "must be a video"),
    (lambda m: m.loss(torch.rand(2, 6, 3, 64, 64)), "must have 1 channel"),
    (lambda m: m.loss(torch.rand(2, 6, 1, 32, 32)), "must be 64x64"),
    (lambda m: m.loss(torch.rand(2, 1, 1, 64, 64)), "at least 2 frames"),
    (lambda m: m.loss(torch.rand(2, 6, 1, 64, 64), n_past=0), "n_past must be in"),
    (lambda m: m.loss(torch.rand(2, 6, 1, 64, 64), n_past=6), "n_past must be in"),
    (lambda m: m.loss(torch.randint(0, 2, (2, 6, 1, 64, 64))), "floating point"),
    (lambda m: m.generate(torch.rand(2, 0, 1, 64, 64), 3), "at least 1 frames"),
    (lambda m: m.generate(torch.rand(2, 2, 1, 64, 64), 0), "n_future and num_samples"),
])
def test_bad_input_names_expected_and_found(call, message):
    with pytest.raises(ValueError, match=message):
        call(SLAMP.from_preset("tiny"))


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="unknown preset 'ucf'"):
        SLAMP.from_preset("ucf")
    with pytest.raises(ValueError, match="backbone must be one of"):
        SLAMP.from_preset("tiny", backbone="resnet")
    with pytest.raises(ValueError, match="works at 64x64"):
        SLAMP.from_preset("tiny", image_size=128)
    with pytest.raises(ValueError, match="even height and width"):
        SLAMP.from_preset("kitti", image_size=(91, 310))
    with pytest.raises(ValueError, match=r"must be 92x310 for the conv backbone"):
        SLAMP.from_preset("kitti", width=4, mask_width=4, g_dim=8, rnn_size=8).loss(torch.rand(1, 3, 3, 64, 64))
    with pytest.raises(ValueError, match="conv_levels must be five"):
        SLAMP.from_preset("kitti", conv_levels=((2, 46, 156),))


def test_no_bias_before_batchnorm_nor_in_squeeze_excitation():
    model = SLAMP.from_preset("tiny")
    modules = dict(model.named_modules())
    for name, module in modules.items():
        if isinstance(module, torch.nn.Sequential):
            layers = list(module)
            for layer, following in zip(layers, layers[1:]):
                if isinstance(following, torch.nn.BatchNorm2d):
                    assert layer.bias is None, f"{name}: {type(layer).__name__} before BatchNorm has a bias"
    gates = [m for n, m in modules.items() if n.endswith("gate")]
    assert gates and all(layer.bias is None for gate in gates for layer in gate if isinstance(layer, torch.nn.Linear))
    for name, module in modules.items():  # what the public code keeps: each decoder's output layer, the mask's
        if name.endswith(("pixel_decoder.out", "flow_decoder.out", "mask_net.net.6")):
            assert module.bias is not None, name


def test_initialisation_is_the_public_codes():
    torch.manual_seed(0)
    model = SLAMP.from_preset("mnist")
    convs = torch.cat([m.weight.flatten() for m in model.modules()
                       if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))])
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    scales = torch.cat([m.weight for m in norms])
    assert abs(convs.mean()) < 1e-4 and abs(convs.std() - 0.02) < 2e-4  # N(0, 0.02): millions of draws
    assert abs(scales.mean() - 1) < 2e-3 and abs(scales.std() - 0.02) < 2e-3
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)
    lstm = model.appearance.prior.lstm  # LSTMs keep PyTorch's default: uniform in ±1/sqrt(hidden)
    assert lstm.weight_hh_l0.abs().max() <= 256**-0.5 and lstm.weight_hh_l0.std() > 0.03
    conv = SLAMP.from_preset("kitti", width=4, mask_width=4, g_dim=8, z_dim=2, rnn_size=8)
    gates = conv.motion.latent.predictor.lstm.gates[0].weight  # ConvLSTM networks: PyTorch's default throughout
    bound = gates[0].numel() ** -0.5  # uniform in ±1/sqrt(fan_in)
    assert gates.abs().max() <= bound and gates.std() > 0.8 * bound / 3**0.5
    assert abs(conv.image_encoder.stages[0][0][0].weight.std() - 0.02) < 0.005  # the rest: N(0, 0.02)


def test_weights_of_the_older_layout_get_a_clear_error():
    model = SLAMP.from_preset("tiny")
    weights = model.state_dict()
    weights["mask_net.net.2.gate.2.bias"] = torch.zeros(1)  # a squeeze-excitation bias of the old layout
    with pytest.raises(IncompatibleWeightsError, match="older slamp"):
        load_weights(model, weights)
    del weights["mask_net.net.2.gate.2.bias"]
    del weights["encoder.head.1.running_mean"]
    with pytest.raises(IncompatibleWeightsError, match="missing"):
        load_weights(model, weights)


def test_the_cpu_preset_starts_one_grey_level_above_black():
    torch.manual_seed(0)
    default, cpu = SLAMP.from_preset("tiny").eval(), SLAMP.from_preset("cpu").eval()
    grey = default.generate(torch.rand(2, 3, 1, 64, 64), n_future=2).x_p  # PyTorch's default
    assert 0.4 < grey.median() < 0.6  # frames start grey
    frames = cpu.generate(torch.rand(2, 3, 1, 64, 64), n_future=2).x_p
    assert 0.5 / 255 < frames.median() < 2 / 255


def test_forward_and_loss_take_the_noise_as_generate_does():
    model = SLAMP.from_preset("tiny").eval()
    video = torch.rand(2, 4, 1, 64, 64)
    noise = model.draw_noise(2, 3)
    with torch.no_grad():
        first, _, _ = model.loss(video, n_past=2, noise=noise)
        torch.rand(5)  # the global generator moves on; the given noise does not
        second, _, _ = model.loss(video, n_past=2, noise=noise)
        stepwise, _, _ = model.loss(video, n_past=2, noise=noise, per_step=True)
    assert torch.equal(first, second) and torch.allclose(first, stepwise, rtol=1e-5)
    with pytest.raises(ValueError, match="noise must hold"):
        model.loss(video, noise={"appearance": noise["appearance"]})
    with pytest.raises(ValueError, match="each of shape"):
        model(video, noise=model.draw_noise(2, 2))


def test_weights_of_the_older_motion_stream_layout_are_refused_with_the_keys_named():
    """Before MotionStream was one module its weights were ``motion_encoder.*`` and ``motion.prior.*``;
    the shipped weights were re-saved under today's names, so those names are no longer read."""
    model = SLAMP.from_preset("tiny")
    renamed = {key.replace("motion.encoder.", "motion_encoder.").replace("motion.latent.", "motion."): value
               for key, value in model.state_dict().items()}
    with pytest.raises(IncompatibleWeightsError, match=r"missing \[.motion\.encoder\..*unexpected \[.motion\."):
        load_weights(SLAMP.from_preset("tiny"), renamed)


def test_at_the_first_step_the_motion_encoder_sees_the_real_pair_before_the_zero_pair():
    """As in the public code (helpers.py, train_step and eval_step): the pair (x_1, x_2) is encoded
    first, then (x_1, x_1), the zero motion the prior reads at the first step; in training mode
    BatchNorm's running statistics are updated in that order."""
    model = SLAMP.from_preset("tiny").train()
    x = torch.rand(2, 3, 1, 64, 64)
    seen = []
    hook = model.motion.encoder.register_forward_pre_hook(
        lambda module, inputs: seen.append("zero" if torch.equal(inputs[0], inputs[1]) else "real"))
    try:
        model(x, n_past=1, per_step=True)
    finally:
        hook.remove()
    assert seen == ["real", "zero", "real"]  # step 1: real then zero; step 2: the real pair (x_2, x_3)


# ---- skip rules: SVG-LP's (held, previous) and SLAMP's (mean) -------------------------------------
def test_the_skip_rules_say_which_frame_each_step_reads():
    skips = torch.arange(6.0).view(1, 6, 1)  # "the skips of x_k" = k
    expected = {"mean": [0, 0.5, 1, 1.5, 2], "held": [0, 1, 2, 2, 2], "previous": [0, 1, 2, 3, 4]}
    for rule in SKIP_RULES:  # n_past = 4: held takes x_0, x_1, x_2 (steps 1..3), then keeps x_{n_past-2}
        batched = decoder_skips(rule, skips, n_past=4)[0, :, 0].tolist()
        carried, stepwise = None, []
        for t in range(1, 6):
            carried, seen = step_skips(rule, carried, [skips[:, t - 1]], t, n_past=4)
            stepwise.append(seen[0].item())
        assert batched == stepwise == expected[rule], rule
    assert decoder_skips("held", skips, n_past=1)[0, :, 0].tolist() == [0] * 5  # one frame: x_0 held


def test_svg_is_svg_lp_and_appearance_only_is_slamps_variant():
    assert SVG.from_preset("tiny").config.skips == "held" and AppearanceOnly.from_preset("tiny").config.skips == "mean"
    assert SVG.from_preset("tiny", skips="previous").config.skips == "previous"
    assert SLAMP.from_preset("tiny").config.skips == "mean"
    assert PRESETS["svg_mnist"].z_dim == 10 and PRESETS["svg_bair"].backbone == "vgg"
    with pytest.raises(ValueError, match="AppearanceOnly"):
        SVG.from_preset("tiny", skips="mean")
    with pytest.raises(ValueError, match="model is SVG"):
        AppearanceOnly.from_preset("tiny", skips="held")
    with pytest.raises(ValueError, match="skips must be one of"):
        SLAMP.from_preset("tiny", skips="last")
    torch.manual_seed(0)
    svg = SVG.from_preset("tiny")  # SVG's public initialisation: linear and output biases start at 0
    biases = [m.bias for m in svg.modules() if isinstance(m, (torch.nn.Linear, torch.nn.ConvTranspose2d))
              and m.bias is not None]
    assert biases and all(torch.count_nonzero(b) == 0 for b in biases)
    slamp_biases = [m.bias for m in SLAMP.from_preset("tiny").modules() if isinstance(m, torch.nn.Linear) and m.bias is not None]
    assert all(torch.count_nonzero(b) > 0 for b in slamp_biases)  # SLAMP's keep PyTorch's default


def test_svg_and_appearance_only_agree_until_the_skips_differ():
    """The same weights: step 1 reads x_0's skips under both rules; with n_past = 3 step 2 does not."""
    torch.manual_seed(0)
    svg = SVG.from_preset("tiny", output_bias=-2.0).eval()
    other = AppearanceOnly.from_preset("tiny", output_bias=-2.0).eval()
    other.load_state_dict(svg.state_dict())
    clip, noise = torch.rand(2, 5, 1, 64, 64), svg.draw_noise(2, 4)
    with torch.no_grad():
        held, mean = svg(clip, n_past=3, noise=noise).x_hat, other(clip, n_past=3, noise=noise).x_hat
    gap = (held - mean).abs().amax(dim=(0, 2, 3, 4))
    assert gap[0] < 1e-6 and (gap[1:] > 1e-4).all(), gap


@pytest.mark.parametrize("rule", SKIP_RULES)
def test_both_paths_and_generation_apply_the_skip_rule_alike(rule):
    cls = AppearanceOnly if rule == "mean" else SVG
    torch.manual_seed(0)
    model = cls.from_preset("tiny", skips=rule).eval()
    clip, noise = torch.rand(2, 6, 1, 64, 64), model.draw_noise(2, 5)
    with torch.no_grad():
        batched = model(clip, n_past=3, noise=noise).x_hat
        stepwise = model(clip, n_past=3, per_step=True, noise=noise).x_hat
    assert torch.allclose(batched, stepwise, atol=1e-6)


def test_old_checkpoints_named_svg_read_as_appearance_only():
    from dataclasses import asdict

    from slamp.checkpoint import saved_as_now, saved_model

    config = {k: v for k, v in asdict(PRESETS["tiny"]).items() if k != "skips"}  # written before skip rules
    assert saved_as_now("SVG", config) == ("AppearanceOnly", {**config, "skips": "mean"})
    assert isinstance(saved_model("SVG", config), AppearanceOnly)
    assert isinstance(saved_model("SVG", {**config, "skips": "held"}), SVG)
    assert saved_as_now("SLAMP", config)[0] == "SLAMP"
