"""The dataset families rsb trains on, one module each (imagenet.py: ImageNet-layout sources; cifar10.py: CIFAR-10),
found by registry.py under the data.dataset value that names them. Everything that differs between families is
asked of the family object (registry.Family); no other module tests a family's name. A new family is one module
here defining FAMILY, plus its tests."""
