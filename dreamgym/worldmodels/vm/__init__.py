"""The World Models family: V (:mod:`~dreamgym.worldmodels.vm.vae`, a ConvVAE), M
(:mod:`~dreamgym.worldmodels.vm.mdnrnn`, an MDN-RNN), the two as one world model
(:mod:`~dreamgym.worldmodels.vm.model`, bundle kind ``vae-mdnrnn``) and their trainers
(:mod:`~dreamgym.worldmodels.vm.train_vae`, :mod:`~dreamgym.worldmodels.vm.train_mdnrnn`)."""
