"""rm_theory: the theory of reward modelling in RLHF made computable (README; THEORY.md §2).

The package is split into wings, one per concept, each with a public face (`rm_theory.<wing>`):
common, world, ibn, rm, policy, real, lm (the library), config, runs, figures (above it) and studies
(on top); `registry` lists the studies.

Shape letters (STYLE.md: an array's name ends in its shape: `x_BxD` is B × D). Each letter means one
thing across the package. A module's legend ("Legend: N items, ...") names the letters it uses, each
by this table's word for it or one of the kinds listed after the colon, and may say more in brackets.
A letter followed by a lowercase one names a part or kind of it that the legend defines (`Nt` terminal
nodes among the N, `Bg` groups of a minibatch); a digit adds to it (`L1` is L + 1).

    A   attention heads
    B   batch: minibatch, round of comparisons, samples drawn per prompt, block of rows
    C   harm categories
    D   width: feature width, model width, head width, embedding dimensions, cube dimensions, rank
    E   edges (of a network)
    F   features: prefix nodes (as one-hot features), Fourier features, feed-forward units
    G   groups: trees, clusters, components, key/value heads (each shared by a group of query heads)
    H   hidden width (of a transformer or a sentence encoder)
    I   input features (of a layer)
    J   annotators (the people, or judges, whose labels a data set holds)
    K   copies computed side by side: ensemble members, runs, tables, seeds, columns (of a block solve), probes
    L   depth: positions along a response, slots, levels (of a trie or a forest)
    M   unknowns (of a linear system: a grounded Laplacian's nodes, a posterior's coordinates)
    N   items: responses, texts, records, nodes (of a network)
    O   output features (of a layer)
    P   comparisons: pairs (compared), candidates (for comparison)
    Q   query pairs: targets
    R   repetitions: bootstrap resamples, rounds
    S   steps (of training or optimisation)
    T   tokens (positions of a sequence)
    U   distinct rows: edges (one per pair of nodes), texts (each once)
    V   vocabulary: branching (of the prefix tree)
    X   prompts (the contexts x of π(y | x))
    Y   responses (of a prompt in the tabulated world: the leaves of its tree)
"""
