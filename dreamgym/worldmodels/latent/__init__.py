"""The latent family (DINO-WM, LeWM): the settings (:mod:`~dreamgym.worldmodels.latent.config`),
encoders (:mod:`~dreamgym.worldmodels.latent.encoders`), predictors
(:mod:`~dreamgym.worldmodels.latent.predictors`), optional readouts
(:mod:`~dreamgym.worldmodels.latent.readouts`), SIGReg, the world model and its loader
(:mod:`~dreamgym.worldmodels.latent.model`, bundle kind ``latent``), the trainer
(:mod:`~dreamgym.worldmodels.latent.train`) and its presets
(:mod:`~dreamgym.worldmodels.latent.presets`)."""
