"""Installable package for the text-to-face project (Fast text2StyleGAN reproduction)."""
from setuptools import find_packages, setup

setup(
    name="text2face",
    version="0.1.0",
    description="Text-free training of a text-to-face interface for pretrained StyleGAN2 generators (Fast text2StyleGAN reproduction)",
    python_requires=">=3.10",
    py_modules=["main", "loss"],
    packages=find_packages(include=["network", "model", "dataset", "torch_utils", "torch_utils.*"]),
    package_data={"torch_utils.ops": ["*.cu", "*.cpp", "*.h", "*.cuh"]},
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "clip-anytorch>=2.6",
        "setuptools<81",
        "ninja",
        "numpy",
        "scipy",
        "pillow",
        "click>=8",
        "tqdm",
        "safetensors",
        "zuko>=1.0",
        "flask>=2.2",
    ],
    extras_require={"test": ["pytest", "selenium>=4.10"]},
    entry_points={"console_scripts": ["text2face=main:cli"]},
)
