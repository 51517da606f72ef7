"""Word count without the stop words of a side file shipped with the job (FILES)."""
import re

from mrjob.job import MRJob

WORD = re.compile(r"[\w']+")


class MRWordCountWithoutStopWords(MRJob):
    FILES = ['stop_words.txt']

    def mapper_init(self):
        # The file is in the task's working directory, under its own name.
        with open('stop_words.txt') as f:
            self.stop = set(f.read().split())

    def mapper(self, _, line):
        for word in WORD.findall(line):
            if word.lower() not in self.stop:
                yield word.lower(), 1

    def reducer(self, word, counts):
        yield word, sum(counts)


if __name__ == '__main__':
    MRWordCountWithoutStopWords.run()
