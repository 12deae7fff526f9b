use tollgate_config::Guard;

use super::*;

fn check(a: &str, b: &str) -> Result<(), Check> {
    Profile::of([a]).compare(&Profile::of([b]), &Guard::ALL)
}

fn passes(a: &str, b: &str) {
    assert_eq!(check(a, b), Ok(()), "{a:?} vs {b:?}");
    assert_eq!(check(b, a), Ok(()), "{b:?} vs {a:?}");
}

fn refused(a: &str, b: &str, by: Check) {
    assert_eq!(check(a, b), Err(by), "{a:?} vs {b:?}");
    assert_eq!(check(b, a), Err(by), "{b:?} vs {a:?}");
}

#[test]
fn paraphrases_pass() {
    passes(
        "How do I reverse a list in Python?",
        "In Python, how can I reverse a list?",
    );
    passes(
        "What's the capital of France?",
        "what is the capital city of France",
    );
    passes(
        "How many days are in a leap year?",
        "A leap year has how many days?",
    );
    passes("Convert 5 km to miles", "How many miles is five km?");
    passes(
        "Why isn't my Docker container starting?",
        "Why does my Docker container not start?",
    );
    passes(
        "Explain recursion simply.",
        "Describe recursion in simple terms.",
    );
}

#[test]
fn numbers_must_match() {
    refused(
        "Is 7 a prime number?",
        "Is 8 a prime number?",
        Check::Numbers,
    );
    refused("What is 15% of 200?", "What is 15% of 300?", Check::Numbers);
    refused(
        "Give me three tips for sleeping",
        "Give me five tips for sleeping",
        Check::Numbers,
    );
    refused(
        "Who won the World Cup in 2018?",
        "Who won the World Cup in 2022?",
        Check::Numbers,
    );
    refused(
        "Summarize the second chapter",
        "Summarize the third chapter",
        Check::Numbers,
    );
    // Same values written differently.
    passes("Is 1,000 bigger than 999?", "Is 1000 bigger than 999?");
    passes("Set it to 3.50", "Set it to 3.5");
    passes("I am twenty five", "I am 25");
    passes("two hundred and five apples", "205 apples");
    passes("What is the 2nd law?", "What is the second law?");
    // "which one" is a pronoun, not a count.
    passes(
        "Which one is faster, Go or Rust?",
        "Which is faster, Go or Rust?",
    );
}

#[test]
fn negations_must_match() {
    refused(
        "Is it safe to eat raw eggs?",
        "Is it not safe to eat raw eggs?",
        Check::Negations,
    );
    refused(
        "Can I take ibuprofen with coffee?",
        "Can't I take ibuprofen with coffee?",
        Check::Negations,
    );
    refused(
        "A list of fruits with seeds",
        "A list of fruits without seeds",
        Check::Negations,
    );
    refused("Do it ever", "Never do it", Check::Negations);
}

#[test]
fn opposites_must_be_on_the_same_side() {
    refused(
        "How do I encrypt a file with GPG?",
        "How do I decrypt a file with GPG?",
        Check::Opposites,
    );
    refused(
        "What should I eat before a run?",
        "What should I eat after a run?",
        Check::Opposites,
    );
    refused(
        "Find the maximum of an array",
        "Find the minimum of an array",
        Check::Opposites,
    );
    refused(
        "Is it a good time to buy gold?",
        "Is it a good time to sell gold?",
        Check::Opposites,
    );
    // Same side in other words; one side alone is not a conflict.
    passes(
        "What happens before the match?",
        "What happens prior to the match?",
    );
    passes("Find the largest value", "Find the maximum value");
    passes(
        "Which uses more memory, a or b?",
        "Which one of a or b needs memory?",
    );
}

#[test]
fn entities_must_appear_in_both() {
    refused(
        "What is the capital of France?",
        "What is the capital of Spain?",
        Check::Entities,
    );
    refused(
        "How do I install numpy on Ubuntu?",
        "How do I install numpy on Fedora?",
        Check::Entities,
    );
    refused(
        "What does os.path.join do?",
        "What does os.path.split do?",
        Check::Entities,
    );
    refused("Explain the GIL", "Explain the JIT", Check::Entities);
    // A name opening a sentence still counts; the other may write it lower-case.
    refused(
        "Python: how do I sort a dict?",
        "Ruby: how do I sort a dict?",
        Check::Entities,
    );
    passes(
        "python: how do I sort a dict?",
        "How do I sort a dict in Python?",
    );
    passes(
        "Tell me about Alice's cat",
        "Tell me about the cat of Alice",
    );
}

#[test]
fn roles_may_not_swap() {
    refused("Did Alice call Bob?", "Did Bob call Alice?", Check::Order);
    refused(
        "Convert a list to a tuple",
        "Convert a tuple to a list",
        Check::Order,
    );
    refused(
        "Is a dog faster than a cat?",
        "Is a cat faster than a dog?",
        Check::Order,
    );
    refused(
        "How many dollars is one euro?",
        "How many euros is one dollar?",
        Check::Order,
    );
    // Plurals pair up with their singular.
    refused(
        "Do dogs chase cats?",
        "Does a cat chase a dog?",
        Check::Order,
    );
    // One phrase moved is the same question.
    passes(
        "How do I convert a list to a tuple in Python?",
        "In Python, how do I convert a list to a tuple?",
    );
}

#[test]
fn disabled_checks_do_not_refuse() {
    let a = Profile::of(["Is 7 prime?"]);
    let b = Profile::of(["Is 8 prime?"]);
    assert_eq!(a.compare(&b, &Guard::NONE), Ok(()));
    let numbers_only = Guard {
        numbers: true,
        ..Guard::NONE
    };
    assert_eq!(a.compare(&b, &numbers_only), Err(Check::Numbers));
    let others = Guard {
        numbers: false,
        ..Guard::ALL
    };
    assert_eq!(a.compare(&b, &others), Ok(()));
}

#[test]
fn profiles_cover_every_text() {
    let a = Profile::of(["You answer about France.", "What is its capital?"]);
    let b = Profile::of(["You answer about Spain.", "What is its capital?"]);
    assert_eq!(a.compare(&b, &Guard::ALL), Err(Check::Entities));
}

#[test]
fn number_normalization() {
    assert_eq!(digit_numbers("1,000,000"), ["1000000"]);
    assert_eq!(digit_numbers("3,5"), ["3.5"]);
    assert_eq!(digit_numbers("007"), ["7"]);
    assert_eq!(digit_numbers("gpt4o"), ["4"]);
    assert_eq!(digit_numbers("v1.2.3"), ["1.2.3"]);
    assert_eq!(digit_numbers("10.0"), ["10"]);
    assert!(digit_numbers("none").is_empty());
}

#[test]
fn same_order_allows_one_moved_phrase() {
    assert!(same_order(&[1, 2, 3, 4], &[1, 2, 3, 4]));
    assert!(same_order(&[1, 2, 3, 4], &[4, 1, 2, 3]));
    assert!(same_order(&[1, 2, 3, 4], &[1, 3, 4, 2]));
    assert!(same_order(&[1, 2], &[2, 1]));
    assert!(!same_order(&[1, 2, 3], &[3, 2, 1]));
    assert!(!same_order(&[1, 2, 3, 4], &[2, 1, 4, 3]));
    // Words only one side has are ignored.
    assert!(same_order(&[1, 9, 2, 3], &[1, 2, 8, 3]));
}
