#!/usr/bin/env python3
"""The same word count as an MRJob (whitespace-separated words, a combiner), for -r local
against -r hadoop on the cluster."""
from mrjob.job import MRJob
from mrjob.protocol import RawValueProtocol


class MRWordCount(MRJob):
    # Plain `word<TAB>count` output lines, like the Streaming scripts'.
    OUTPUT_PROTOCOL = RawValueProtocol

    def mapper(self, _, line):
        for word in line.split():
            yield word, 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield None, "%s\t%d" % (word, sum(counts))


if __name__ == "__main__":
    MRWordCount.run()
