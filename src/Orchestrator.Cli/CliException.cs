namespace Orchestrator.Cli;

/// <summary>A failure the user can act on: printed as <c>error: message</c>, no stack trace.</summary>
public class CliException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>The node answered with an error status; <see cref="Problem"/> is its problem details (or one made up from the status).</summary>
public sealed class ApiProblemException(ProblemDetails problem, int statusCode)
    : CliException(ProblemFormatter.Headline(problem, statusCode))
{
    public ProblemDetails Problem { get; } = problem;

    public int StatusCode { get; } = statusCode;
}
