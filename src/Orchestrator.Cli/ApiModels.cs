// What the client reads besides the API's own shapes (Orchestrator.Contracts): its error answers.
namespace Orchestrator.Cli;

/// <summary>RFC 7807 problem details, as the API answers every error.</summary>
public sealed record ProblemDetails(
    string? Type,
    string? Title,
    int? Status,
    string? Detail,
    IReadOnlyDictionary<string, string[]>? Errors);
