"""The evaluation protocols of DESIGN section 6: TSTR, low-data augmentation, efficiency."""
