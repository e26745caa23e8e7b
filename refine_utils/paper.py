"""The paper's reference values, in one place (PAPER.md). Tests, notebooks and the scorecard
read them from here; nothing else types a number the paper reports."""

#: Parameter counts, trainable parameters plus BatchNorm running mean and variance (Keras convention).
TOTAL_PARAMS = {
    "resnet110": 1_742_762,
    "single-representation": 1_829_210,
    "avg-pooling": 12_201_310,
    "wide": 45_732_842,
}

#: Trainable parameter counts on CIFAR-10; CIFAR-100 adds ``CIFAR100_EXTRA`` (a 64x90 larger classifier).
TRAINABLE_PARAMS = {
    "resnet32": 467_946,
    "resnet38": 565_386,
    "resnet56": 857_706,
    "resnet110": 1_734_666,
    "resnet110-ubn": 570_762,
    "resnet146-ubn": 573_450,
    "resnet182-ubn": 576_138,
    # Naive sharing keeps six distinct blocks per stage: resnet38's count.
    "resnet110-shared": 565_386,
}
CIFAR100_EXTRA = 5_850

#: Table 1: (train error %, test error %), mean of 4 runs.
TABLE1 = {
    "cifar10": {
        "resnet32": (1.53, 7.14), "resnet38": (1.20, 6.99), "resnet110-ubn": (0.63, 6.62),
        "resnet146-ubn": (0.68, 6.82), "resnet182-ubn": (0.48, 6.97), "resnet56": (0.58, 6.53),
        "resnet110": (0.22, 6.13),
    },
    "cifar100": {
        "resnet32": (12.62, 30.08), "resnet38": (10.04, 29.66), "resnet110-ubn": (7.75, 29.94),
        "resnet146-ubn": (7.21, 29.49), "resnet182-ubn": (6.42, 29.33), "resnet56": (5.19, 28.99),
        "resnet110": (1.26, 27.54),
    },
}

#: Fig. 6 / Fig. 7 numbers quoted in the text.
LAST_BLOCK_COSINE = -0.1
UNROLL_STEPS = 20
UNROLL_TRAIN_LOSS = (0.0012, 0.001)
UNROLL_BORDERLINE_COUNT = 51
UNROLL_BORDERLINE_ACC = (0.43, 0.53)
BORDERLINE_MARGIN = 0.10

#: Section 6 reference points (test error %, CIFAR-10).
HE2016_RESNET110_MEAN = 6.61
HE2016_PREACT_RESNET110 = 6.37

#: CIFAR-10's test set: Fig. 7's 51 borderline examples are a share of it.
TEST_EXAMPLES = 10_000

#: Fig. 2: the first block's l2 ratio of single-representation and avg-pooling ("up to ~2").
FIRST_BLOCK_RATIO = 2
