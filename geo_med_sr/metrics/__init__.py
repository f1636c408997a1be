"""Image and fusion metrics: PSNR/SSIM on valid pixels (image), ERGAS/SAM/Q2n/QNR (fusion)."""
