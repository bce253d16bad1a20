// `vm create --ssh-key FILE --user-data FILE`: the files the client reads and sends; the server never opens a file.
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

public static class BootstrapFiles
{
    /// <summary>
    /// The keys of authorized_keys-style files: each line that is not blank or a '#' comment, in order. The server
    /// checks each key; the file's name is the user's own and is shown in errors.
    /// </summary>
    public static List<string> ReadSshKeys(IEnumerable<string> files)
    {
        var keys = new List<string>();
        foreach (var file in files)
        {
            keys.AddRange(ReadAll(file, "--ssh-key", File.ReadAllLines)
                .Select(line => line.Trim())
                .Where(line => line.Length > 0 && !line.StartsWith('#')));
        }

        return keys;
    }

    /// <summary>The file's bytes as they are; over <see cref="CreateVmRequest.MaxUserDataBytes"/> is refused before it travels.</summary>
    public static byte[] ReadUserData(string file)
    {
        var length = ReadAll(file, "--user-data", path => new FileInfo(path).Length);
        if (length > CreateVmRequest.MaxUserDataBytes)
        {
            throw new CliException(
                $"--user-data {file}: {length} bytes is over the limit of {CreateVmRequest.MaxUserDataBytes} bytes (64 KiB)");
        }

        return ReadAll(file, "--user-data", File.ReadAllBytes);
    }

    private static T ReadAll<T>(string file, string option, Func<string, T> read)
    {
        try
        {
            return read(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"{option} {file}: {ex.Message}");
        }
    }
}
