"""Copies of a tweet (the same content and username: reposts, templates) kept together on one side
of every split: train/test in 01, fit/validation in 03b and 04. 01 numbers each row's tweet (its
copies share the number, the classed CSV's `tweet_group`); with --split time the numbers follow
the posting day of each tweet's latest copy, so the highest are the latest, which is where 03b and
04 draw their validation slice from (training.training_split).
"""
import numpy as np
import pandas as pd


def duplicate_groups(table):
    """Each row's group of copies (the same content and username), numbered by first appearance:
    a table without copies gets 0, 1, 2, ..., so grouping it changes nothing."""
    return table.groupby(["content", "username"], sort=False).ngroup().to_numpy()


def tweet_groups(table, days=None):
    """duplicate_groups, renumbered by the posting day of each group's latest copy (ties by first
    appearance) when `days` are given: a higher number is a later tweet."""
    group = duplicate_groups(table)
    if days is None:
        return group
    order = np.argsort(pd.Series(days).groupby(group).max().to_numpy(), kind="stable")
    number = np.empty_like(order)
    number[order] = np.arange(len(order))
    return number[group]


def take_groups(group, order, wanted):
    """Which rows are in the groups taken, in `order`, while the rows taken fall short of `wanted`."""
    sizes = np.bincount(group)[order]
    taken = np.zeros(len(order), dtype=bool)
    taken[order] = (np.cumsum(sizes) - sizes) < wanted
    return taken[group]
