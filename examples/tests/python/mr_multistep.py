"""Two steps: count words, then the most frequent word of each initial letter."""
import re

from mrjob.job import MRJob
from mrjob.step import MRStep

WORD = re.compile(r"[\w']+")


class MRTopWordPerLetter(MRJob):
    def steps(self):
        return [
            MRStep(mapper=self.words, combiner=self.total, reducer=self.total),
            MRStep(mapper=self.by_letter, reducer=self.top),
        ]

    def words(self, _, line):
        for word in WORD.findall(line):
            yield word.lower(), 1

    def total(self, word, counts):
        yield word, sum(counts)

    def by_letter(self, word, count):
        yield word[0], (count, word)

    def top(self, letter, pairs):
        # Ties go to the alphabetically last word, so the answer does not depend on order.
        yield letter, max(pairs)


if __name__ == '__main__':
    MRTopWordPerLetter.run()
